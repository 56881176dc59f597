//! Finding one top-level field of a JSON object without parsing the rest.
//!
//! The body has already been verified, so this is not a validator: it walks
//! the top-level keys, skips every other value by scanning its bytes (strings
//! with their escapes, nested containers by depth, with no recursion), and
//! stops at the first key equal to the field. A provider that sends its id
//! first (Stripe, Paddle) costs a few bytes of scanning, whatever the body's
//! size.

/// Returns the raw JSON text of the first top-level `field` of the object in
/// `body`, or `None` if the object has no such key.
///
/// # Errors
///
/// A static description when `body` is not a JSON object, or is cut short
/// before the field is found.
pub(crate) fn top_level_field<'a>(
    body: &'a [u8],
    field: &str,
) -> Result<Option<&'a [u8]>, &'static str> {
    let mut at = skip_whitespace(body, 0);
    if body.get(at) != Some(&b'{') {
        return Err("not a JSON object");
    }
    at = skip_whitespace(body, at + 1);
    if body.get(at) == Some(&b'}') {
        return Ok(None);
    }
    loop {
        if body.get(at) != Some(&b'"') {
            return Err("not valid JSON");
        }
        let key_end = skip_string(body, at)?;
        let key = &body[at..key_end];
        at = skip_whitespace(body, key_end);
        if body.get(at) != Some(&b':') {
            return Err("not valid JSON");
        }
        let value_start = skip_whitespace(body, at + 1);
        let value_end = skip_value(body, value_start)?;
        if key_is(key, field) {
            return Ok(Some(&body[value_start..value_end]));
        }
        at = skip_whitespace(body, value_end);
        match body.get(at) {
            Some(b',') => at = skip_whitespace(body, at + 1),
            Some(b'}') => return Ok(None),
            _ => return Err("not valid JSON"),
        }
    }
}

/// Whether the quoted JSON string `raw` (quotes included) equals `field`.
fn key_is(raw: &[u8], field: &str) -> bool {
    let inner = &raw[1..raw.len() - 1];
    if !inner.contains(&b'\\') {
        return inner == field.as_bytes();
    }
    // Escaped keys are rare: let serde_json decode them.
    serde_json::from_slice::<String>(raw).is_ok_and(|key| key == field)
}

fn skip_whitespace(body: &[u8], mut at: usize) -> usize {
    while matches!(body.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// `at` is on an opening quote; returns the index after the closing one.
fn skip_string(body: &[u8], at: usize) -> Result<usize, &'static str> {
    let mut index = at + 1;
    while let Some(&byte) = body.get(index) {
        match byte {
            b'"' => return Ok(index + 1),
            b'\\' => index += 2,
            _ => index += 1,
        }
    }
    Err("unexpected end of input")
}

/// Returns the index after the value starting at `at`.
fn skip_value(body: &[u8], at: usize) -> Result<usize, &'static str> {
    match body.get(at) {
        None => Err("unexpected end of input"),
        Some(b'"') => skip_string(body, at),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut index = at;
            while let Some(&byte) = body.get(index) {
                match byte {
                    b'"' => {
                        index = skip_string(body, index)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(index + 1);
                        }
                    }
                    _ => {}
                }
                index += 1;
            }
            Err("unexpected end of input")
        }
        Some(_) => {
            // A number, true, false or null: up to the next delimiter.
            let mut index = at;
            while let Some(&byte) = body.get(index) {
                if matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                index += 1;
            }
            Ok(index)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::top_level_field;

    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            ".{0,12}".prop_map(serde_json::Value::from),
            "[\"\\\\{}\\[\\],:a-z ]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("(id|[a-z\"\\\\{}]{0,6})", inner, 0..6)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// On any valid JSON object, the scanner finds exactly what a full
        /// parse finds at the top level.
        #[test]
        fn agrees_with_a_full_parse(value in json(), pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) }.unwrap();
            let found = top_level_field(text.as_bytes(), "id");
            match &value {
                serde_json::Value::Object(map) => {
                    let raw = found.expect("a valid object scans");
                    let scanned = raw.map(|raw| serde_json::from_slice::<serde_json::Value>(raw).unwrap());
                    prop_assert_eq!(scanned.as_ref(), map.get("id"));
                }
                _ => prop_assert!(found.is_err()),
            }
        }
    }

    #[test]
    fn stops_at_the_field() {
        assert_eq!(
            top_level_field(br#"{"id":"evt_1",garbage"#, "id"),
            Ok(Some(&br#""evt_1""#[..]))
        );
        assert_eq!(
            top_level_field(br#" { "a" : [1,{"id":2}] , "id" : 3 } "#, "id"),
            Ok(Some(&b"3"[..]))
        );
        assert_eq!(
            top_level_field(br#"{"\u0069d":"x"}"#, "id"),
            Ok(Some(&br#""x""#[..]))
        );
        assert_eq!(
            top_level_field(br#"{"i\"d":"x","id":"y"}"#, "id"),
            Ok(Some(&br#""y""#[..]))
        );
        assert_eq!(top_level_field(b"{}", "id"), Ok(None));
        assert!(top_level_field(b"[]", "id").is_err());
        assert!(top_level_field(br#"{"a":"unterminated"#, "id").is_err());
        assert!(top_level_field(b"", "id").is_err());
    }
}
