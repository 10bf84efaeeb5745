//! The record codec on damaged bytes: any bytes decode to a record or to an error naming
//! the record type, never a panic, and never to a value when the checksum is off.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    latchkey::store::fuzzing::decode_every_record_type(bytes);
});
