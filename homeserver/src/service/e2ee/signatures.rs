//! Checking ed25519 signatures over key objects, as clients make them: over the canonical JSON
//! of the object without its `signatures` and `unsigned`.

use base64::Engine;
use ruma::{
    CanonicalJsonValue,
    signatures::{
        SigningKeyAlgorithm, to_canonical_json_string_for_signing, verify_canonical_json_bytes,
    },
};
use serde_json::Value;

/// Whether `signature` (unpadded base64) is `public_key`'s (unpadded base64) signature of `key`.
pub fn is_valid(key: &Value, public_key: &str, signature: &str) -> bool {
    let Ok(CanonicalJsonValue::Object(object)) = CanonicalJsonValue::try_from(key.clone()) else {
        return false;
    };
    let Ok(canonical) = to_canonical_json_string_for_signing(&object) else {
        return false;
    };
    let decode = |s: &str| {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(s.trim_end_matches('='))
            .ok()
    };
    let (Some(public_key), Some(signature)) = (decode(public_key), decode(signature)) else {
        return false;
    };
    verify_canonical_json_bytes(
        &SigningKeyAlgorithm::Ed25519,
        &public_key,
        &signature,
        canonical.as_bytes(),
    )
    .is_ok()
}

/// The signature `signer_key_id` of `user_id` on `key`, if any.
pub fn signature_by<'a>(key: &'a Value, user_id: &str, signer_key_id: &str) -> Option<&'a str> {
    key.get("signatures")?
        .get(user_id)?
        .get(signer_key_id)?
        .as_str()
}

#[cfg(test)]
mod tests {
    use ruma::{
        CanonicalJsonValue,
        signatures::{Ed25519KeyPair, KeyPair, sign_json},
    };
    use serde_json::json;

    use super::*;

    #[test]
    fn a_signature_made_by_the_key_verifies_and_a_changed_object_does_not() {
        let pair = Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), "K".to_owned()).unwrap();
        let public = base64::engine::general_purpose::STANDARD_NO_PAD.encode(pair.public_key());
        let key = json!({"user_id": "@a:x", "keys": {"ed25519:A": "abc"}, "unsigned": {"x": 1}});
        let CanonicalJsonValue::Object(mut object) = CanonicalJsonValue::try_from(key).unwrap()
        else {
            unreachable!()
        };
        sign_json("@a:x", &pair, &mut object).unwrap();
        let signed = serde_json::to_value(&object).unwrap();
        let signature = signature_by(&signed, "@a:x", "ed25519:K").unwrap();
        assert!(is_valid(&signed, &public, signature));
        let mut changed = signed.clone();
        changed["user_id"] = json!("@b:x");
        assert!(!is_valid(&changed, &public, signature));
        let _ = pair.sign(b"");
    }
}
