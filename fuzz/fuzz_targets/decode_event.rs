//! The engine's single-event decoder (with validation) on arbitrary bytes:
//! never panics; whatever it accepts passes the limits again and decodes the
//! same after a JSON round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use statecraft_engine::Limits;
use statecraft_engine::limits::decode_event;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(event) = decode_event(data, &limits) {
        assert!(limits.validate(&event).is_ok());
        let text = serde_json::to_vec(&event).expect("events serialize");
        let again = decode_event(&text, &limits).expect("a decoded event re-decodes");
        assert_eq!(again.key, event.key);
        assert_eq!(again.op, event.op);
    }
});
