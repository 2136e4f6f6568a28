//! What a failing test prints: the assertion, then what the runtime under
//! test was run with and what came back, so a learner never has to read the
//! suite's source to see what went wrong.
//!
//! Two pieces. [`expect_eq!`](crate::expect_eq) replaces `assert_eq!` and
//! labels its sides: the first is what the runtime under test gave, the
//! second what the suite expects. And a panic hook, installed once per suite,
//! adds the last run's account ("ran / it exited / stdout / stderr") under any
//! failing assertion that does not carry one already, `assert!` included.

use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    /// The account of the last run this test thread finished.
    static LAST_RUN: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Remember `account` as the last run of this test (each test is a thread).
pub(crate) fn remember(account: String) {
    LAST_RUN.with(|last| *last.borrow_mut() = Some(account));
}

/// Install the hook (once per process; every test thread shares it).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if message.contains("  ran:") {
                return;
            }
            if let Some(account) = LAST_RUN.with(|last| last.borrow().clone()) {
                eprintln!("the last run of the runtime under test:\n{account}");
            }
        }));
    });
}

/// `assert_eq!` for the suites: the first value is what the runtime under
/// test gave (or left on the host), the second what the suite expects.
/// Optional arguments after them say why, as `format!` does.
#[macro_export]
macro_rules! expect_eq {
    ($got:expr, $want:expr $(,)?) => {
        $crate::expect_eq!($got, $want, "a value from the runtime under test is not the expected one")
    };
    ($got:expr, $want:expr, $($why:tt)+) => {
        match (&$got, &$want) {
            (got, want) => {
                if !(*got == *want) {
                    panic!(
                        "{}\n  the runtime under test gave: {:?}\n  the suite expects:           {:?}",
                        format_args!($($why)+),
                        got,
                        want
                    );
                }
            }
        }
    };
}

/// `assert_ne!` for the suites: the first value is what the runtime under
/// test gave, the second what it must not be.
#[macro_export]
macro_rules! expect_ne {
    ($got:expr, $unwanted:expr $(,)?) => {
        $crate::expect_ne!($got, $unwanted, "a value from the runtime under test is one it must not be")
    };
    ($got:expr, $unwanted:expr, $($why:tt)+) => {
        match (&$got, &$unwanted) {
            (got, unwanted) => {
                if *got == *unwanted {
                    panic!(
                        "{}\n  the runtime under test gave: {:?}\n  which it must not be",
                        format_args!($($why)+),
                        got
                    );
                }
            }
        }
    };
}
