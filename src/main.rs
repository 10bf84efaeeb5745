//! The `latchkey` executable: parses the command line and hands over to [`latchkey::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    latchkey::cli::main()
}
