//! Example guests on the guest kit (`pv-guest`): the bins are `hello`, `hello-low` (the
//! same program linked at 0x400000, in the low half) and `blklog`. The hello program lives
//! here so that both of its bins link it.
#![no_std]

#[cfg(target_os = "none")]
pub mod hello;
