//! `gradbench-tool`: serves GradBench's protocol on stdin/stdout with cotangent.

use std::io;

fn main() -> io::Result<()> {
    // Panics inside an evaluation are reported in the response; keep stderr quiet about them.
    std::panic::set_hook(Box::new(|info| eprintln!("gradbench-tool: {info}")));
    gradbench_tool::protocol::serve(io::stdin().lock(), io::stdout().lock())
}
