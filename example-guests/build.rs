//! Links the bins as PV kernels with the kit's linker script (see `guest-link`);
//! `hello-low` is the hello program linked in the low half.

fn main() {
    guest_link::link_guest_bins(&[("hello-low", "--defsym=GUEST_BASE=0x400000")]);
}
