//! Whether a service should receive traffic: starting, then ready, then stopping.
//!
//! Liveness (`/health`) does not look at this; only `/ready` does. The state only moves forward:
//! once stopping, [`Readiness::set_ready`] has no effect, so a late "first job done" cannot put a
//! draining service back into a load balancer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// Where a service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadinessState {
    /// Not yet able to serve; `/ready` answers 503.
    Starting,
    /// Serving; `/ready` answers 200.
    Ready,
    /// Shutting down and draining; `/ready` answers 503.
    Stopping,
}

/// The shared readiness of a service, flipped by the app; clones share one state.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    state: Arc<AtomicU8>,
}

const STARTING: u8 = 0;
const READY: u8 = 1;
const STOPPING: u8 = 2;

impl ReadinessState {
    /// The word `/ready` reports in its `status` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Stopping => "stopping",
        }
    }
}

impl Readiness {
    /// A service that is starting.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current state.
    pub fn state(&self) -> ReadinessState {
        match self.state.load(Ordering::Acquire) {
            STARTING => ReadinessState::Starting,
            READY => ReadinessState::Ready,
            _ => ReadinessState::Stopping,
        }
    }

    /// Whether the service should receive traffic.
    pub fn is_ready(&self) -> bool {
        self.state() == ReadinessState::Ready
    }

    /// Starting becomes ready; no effect when already ready or stopping.
    pub fn set_ready(&self) {
        let _already_moved_on =
            self.state
                .compare_exchange(STARTING, READY, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Marks the service as stopping, whatever its state.
    pub fn set_stopping(&self) {
        self.state.store(STOPPING, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_only_forward_and_clones_share_the_state() {
        let readiness = Readiness::new();
        let seen_by_router = readiness.clone();
        assert_eq!(seen_by_router.state(), ReadinessState::Starting);
        assert!(!seen_by_router.is_ready());

        readiness.set_ready();
        assert_eq!(seen_by_router.state(), ReadinessState::Ready);
        assert!(seen_by_router.is_ready());

        readiness.set_stopping();
        readiness.set_ready();
        assert_eq!(seen_by_router.state(), ReadinessState::Stopping);
        assert!(!seen_by_router.is_ready());
    }
}
