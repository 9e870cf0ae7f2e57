//! `gradbench-tool`: serves GradBench's protocol on stdin/stdout with cotangent.
//!
//! GradBench runs tools on one thread unless it passes `--multithreaded`, so this tool
//! calls `cotangent::set_threads(1)` by default. `--multithreaded` lets cotangent use all
//! cores, and `COTANGENT_THREADS=N` in the environment wins over both.

use std::io;

const USAGE: &str = "usage: gradbench-tool [--multithreaded]

Serves GradBench's JSON-lines protocol on stdin/stdout.
  --multithreaded   use every core (default: one thread, as GradBench expects)
COTANGENT_THREADS=N in the environment sets the thread count whatever the flag.";

fn main() -> io::Result<()> {
    let mut multithreaded = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--multithreaded" => multithreaded = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => {
                eprintln!("gradbench-tool: unknown argument {other:?}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    if let Some(n) = gradbench_tool::threads_to_set(multithreaded, std::env::var_os("COTANGENT_THREADS").is_some()) {
        if let Err(e) = cotangent::set_threads(n) {
            eprintln!("gradbench-tool: {e}");
        }
    }
    // Panics inside an evaluation are reported in the response; keep stderr quiet about them.
    std::panic::set_hook(Box::new(|info| eprintln!("gradbench-tool: {info}")));
    gradbench_tool::protocol::serve(io::stdin().lock(), io::stdout().lock())
}
