//! `cargo xtask`: builds the kernels, boots them in QEMU, runs the tests and benchmarks,
//! and makes the GRUB boot image. Missing tools are installed (as root) or named.

mod bench;
mod build;
mod deps;
mod disk;
mod expect;
mod fuzz;
mod image;
mod linux;
mod mkelf32;
mod qemu;
mod run;
mod scenarios;
mod test;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Build, boot, test and benchmark the hypervisor.
#[derive(Debug, Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build everything and boot it in QEMU with the serial console on this terminal.
    ///
    /// Exit status: 0 dom0 powered off, 2 dom0 rebooted, 3 dom0 crashed, 4 boot error,
    /// 5 microkernel panic, 1 anything else. Without a terminal, stdin goes to the serial
    /// port: `printf 'info\nshutdown\n' | cargo xtask run`.
    Run(run::RunArgs),
    /// Run the host tests, then boot every scenario and check its serial console.
    Test(test::TestArgs),
    /// Build a GRUB (multiboot2) ISO, target/boot/microkernel.iso by default.
    Image(image::ImageArgs),
    /// Boot the bench guest and dom0; print the figures and write target/bench/latest.json.
    Bench(bench::BenchArgs),
    /// Run a campaign of the hostile-guest fuzzer beside a bystander, auditing the
    /// microkernel's accounting as it goes; fails on a panic, a dom0 crash, a failed audit,
    /// a starved bystander or memory not given back.
    Fuzz(fuzz::FuzzArgs),
    /// Convert an ELF64 kernel into the ELF32 QEMU's Multiboot loader accepts (every build
    /// does this for the microkernel; this is for trying other images).
    #[command(hide = true)]
    Mkelf32 {
        /// The ELF64 input.
        input: std::path::PathBuf,
        /// The ELF32 output.
        output: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run(args) => run::main(args),
        Cmd::Test(args) => test::main(args),
        Cmd::Image(args) => image::main(args).map(|()| ExitCode::SUCCESS),
        Cmd::Bench(args) => bench::main(args).map(|()| ExitCode::SUCCESS),
        Cmd::Fuzz(args) => fuzz::main(args),
        Cmd::Mkelf32 { input, output } => {
            mkelf32::convert_file(&input, &output).map(|()| ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        ExitCode::FAILURE
    })
}
