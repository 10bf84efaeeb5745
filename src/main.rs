//! The `latchkey` executable: parses the command line and hands over to [`latchkey::cli`].

use std::process::ExitCode;

// The server allocates and frees small buffers on every request from several threads;
// glibc's allocator serialises them on its arena locks (measured: futex waits in the
// load benchmark's profile), mimalloc keeps them thread-local.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    latchkey::cli::main()
}
