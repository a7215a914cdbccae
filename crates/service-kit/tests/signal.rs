//! `shutdown_signal` resolves on a real SIGTERM and SIGINT sent to this test process.
//!
//! Alone in its own test binary: the signals go to the whole process.

use std::process::Command;
use std::time::Duration;

use service_kit::{Signal, shutdown_signal};

fn send_to_self(signal_name: &str) {
    let status = Command::new("kill")
        .args([signal_name, &std::process::id().to_string()])
        .status()
        .expect("failed to run `kill`");
    assert!(status.success(), "`kill {signal_name}` failed: {status}");
}

#[test]
fn shutdown_signal_resolves_on_sigterm_then_on_sigint() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for (signal_name, expected) in [("-TERM", Signal::Terminate), ("-INT", Signal::Interrupt)] {
            let signal = shutdown_signal().expect("failed to install the signal handlers");
            send_to_self(signal_name);
            let received = tokio::time::timeout(Duration::from_secs(5), signal)
                .await
                .unwrap_or_else(|_| panic!("no {expected} within 5 s"));
            assert_eq!(received, expected);
        }
    });
    assert_eq!(Signal::Terminate.to_string(), "SIGTERM");
    assert_eq!(Signal::Interrupt.to_string(), "SIGINT");
}
