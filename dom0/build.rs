//! Links the bins as PV kernels with the kit's linker script (see `guest-link`).

fn main() {
    guest_link::link_guest_bins(&[]);
}
