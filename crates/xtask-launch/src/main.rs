//! `cargo xtask`: starts the tool's binary, after `cargo build` of it when anything it is built
//! from changed (see the library).

use xtask_launch::{LaunchError, TOOL};

fn main() {
    let launched = xtask_launch::from_process(TOOL).and_then(|launch| {
        xtask_launch::prepare(&launch, TOOL)?;
        xtask_launch::exec(&launch, std::env::args_os().skip(1))
    });
    let code = match launched {
        Ok(code) => code,
        Err(error) => {
            report(&error);
            error.exit_code()
        }
    };
    std::process::exit(code);
}

/// Cargo has printed a failed build's errors; anything else is said here.
#[expect(
    clippy::print_stderr,
    reason = "the launcher reports fatal errors on stderr"
)]
fn report(error: &LaunchError) {
    if let LaunchError::Environment(message) = error {
        eprintln!("error: {message}");
    }
}
