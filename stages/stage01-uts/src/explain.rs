//! `--explain`: the runtime narrates each kernel step as it happens.
//!
//! Every step of the start sequence emits one `tracing` event with the target
//! `explain` and three fields: the call with its arguments, its result, and
//! one line on why it is made. With `--explain` a small layer prints each
//! event as a line on stderr:
//!
//! ```text
//! explain host  clone(CLONE_NEWUTS|SIGCHLD) → pid 4242: new UTS namespace, so sethostname inside does not touch the host
//! explain ctr   sethostname("web") → ok: the name changes in the container's UTS namespace only; the host keeps its own
//! ```
//!
//! `host` lines come from the runtime, `ctr` lines from the container's
//! process before it becomes COMMAND. Without `--explain` no subscriber is
//! installed, and each `explain!` costs one relaxed atomic load: the arguments
//! are not even formatted.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// The `tracing` target of the narration.
pub const TARGET: &str = "explain";

static IN_CONTAINER: AtomicBool = AtomicBool::new(false);

// ANCHOR: macro
/// Narrate a kernel step: `explain!("call" => "result", "why")`. All three
/// are format strings that may name variables in scope.
#[macro_export]
macro_rules! explain {
    ($call:literal => $result:literal, $why:literal) => {
        ::tracing::info!(
            target: "explain",
            call = %format_args!($call),
            result = %format_args!($result),
            why = %format_args!($why),
        )
    };
}
// ANCHOR_END: macro

/// Turn the narration on (or leave it off). Call once, early in `main`.
pub fn init(enabled: bool) {
    if enabled {
        let subscriber = tracing_subscriber::registry().with(Narrator);
        // Only fails if a subscriber is already set, in which case that one
        // keeps narrating: nothing to do.
        let _ = tracing::subscriber::set_global_default(subscriber);
    }
}

/// Called by the container's process right after clone: from here on its
/// lines are marked `ctr`.
pub fn entered_container() {
    IN_CONTAINER.store(true, Ordering::Relaxed);
}

/// Whether narration is on, for callers that must do extra work (read a file,
/// say) only to narrate it.
pub fn enabled() -> bool {
    tracing::enabled!(target: "explain", tracing::Level::INFO)
}

struct Narrator;

impl<S: Subscriber> Layer<S> for Narrator {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        metadata.target() == TARGET
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut step = Step::default();
        event.record(&mut step);
        let side = if IN_CONTAINER.load(Ordering::Relaxed) {
            "ctr "
        } else {
            "host"
        };
        // One write per line, so that lines from the runtime and from the
        // container's process (both write to the same stderr) never interleave
        // in the middle.
        let line = format!("{}\n", step.line(side));
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

#[derive(Default)]
struct Step {
    call: String,
    result: String,
    why: String,
}

impl Step {
    fn line(&self, side: &str) -> String {
        format!(
            "explain {side}  {} → {}: {}",
            self.call, self.result, self.why
        )
    }
}

impl Visit for Step {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let slot = match field.name() {
            "call" => &mut self.call,
            "result" => &mut self.result,
            "why" => &mut self.why,
            _ => return,
        };
        let _ = write!(slot, "{value:?}");
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Captures what the narrator would print, without a global subscriber.
    struct Capture(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            let mut step = Step::default();
            event.record(&mut step);
            self.0.lock().unwrap().push(step.line("host"));
        }
    }

    #[test]
    fn a_step_reads_call_result_why() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(lines.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let pid = 4242;
            let flags = "CLONE_NEWUTS|SIGCHLD";
            crate::explain!("clone({flags})" => "pid {pid}", "new UTS namespace");
        });
        assert_eq!(
            lines.lock().unwrap().as_slice(),
            ["explain host  clone(CLONE_NEWUTS|SIGCHLD) → pid 4242: new UTS namespace"]
        );
    }

    #[test]
    fn off_by_default() {
        assert!(!enabled());
    }
}
