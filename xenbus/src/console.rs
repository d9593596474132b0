//! Xen's console ring (`xencons_interface`, xen/include/public/io/console.h): one page,
//! `in[1024]` (back end to guest), `out[2048]` (guest to back end), then the four
//! free-running indices `in_cons`, `in_prod`, `out_cons`, `out_prod`. The one definition
//! the back end in dom0 and the front end in the kit share.

/// Size of the input ring (`in[1024]`: back end to guest).
pub const IN_SIZE: u32 = 1024;
/// Size of the output ring (`out[2048]`: guest to back end).
pub const OUT_SIZE: u32 = 2048;
/// Byte offset of `in` in the page.
pub const IN_OFFSET: usize = 0;
/// Byte offset of `out`.
pub const OUT_OFFSET: usize = 1024;
/// Byte offset of `in_cons` (then `in_prod`, `out_cons`, `out_prod`, 4 bytes each).
pub const IN_CONS: usize = 3072;
/// Byte offset of `in_prod`.
pub const IN_PROD: usize = 3076;
/// Byte offset of `out_cons`.
pub const OUT_CONS: usize = 3080;
/// Byte offset of `out_prod`.
pub const OUT_PROD: usize = 3084;

const _: () = assert!(OUT_OFFSET == IN_OFFSET + IN_SIZE as usize && IN_CONS == OUT_OFFSET + OUT_SIZE as usize);
