//! Any message body: `RunEvent::parse` must answer `Ok` or `Err`, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use run_notifier::event::RunEvent;

fuzz_target!(|body: &[u8]| {
    if let Ok(event) = RunEvent::parse(body) {
        // What the worker and templates read next must hold for any accepted event.
        let _ = event.outcome();
        let _ = event.data.commit.repo();
    }
});
