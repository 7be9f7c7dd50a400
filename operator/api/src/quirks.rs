//! Schema and serde helpers for strings that may be empty.
//!
//! The local 1.20 apiserver (built with a newer Go) validates an empty string in a custom
//! resource as if it were `null`: `"content": ""` is refused with "must be of type string:
//! null" unless the field is `nullable`. Strings that may legitimately be empty are therefore
//! marked nullable in the schema, and a `null` reads back as "".

use serde::{Deserialize, Deserializer};

#[cfg(feature = "crd")]
/// Schema transform: the field may be `null` (and has no `default`, which the same server
/// turns into `null` and refuses in the CRD).
pub(crate) fn nullable_string(schema: &mut schemars::Schema) {
    schema.remove("default");
    schema.insert("nullable".into(), true.into());
}

/// Deserialize `null` (or an absent field, with `#[serde(default)]`) as "".
pub(crate) fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

#[cfg(all(test, feature = "crd"))]
mod tests {
    use crate::{RuntimeSpec, SourceFile};

    #[test]
    fn empty_strings_may_arrive_as_null() {
        let f: SourceFile = serde_json::from_str(r#"{"name": "__init__.py", "content": null}"#).unwrap();
        assert_eq!(f.content, "");
        let f: SourceFile = serde_json::from_str(r#"{"name": "__init__.py"}"#).unwrap();
        assert_eq!(f.content, "");
        let r: RuntimeSpec = serde_json::from_str(
            r#"{"displayName": null, "version": "1", "image": "i", "sourceFile": "a", "run": ["a"]}"#,
        )
        .unwrap();
        assert_eq!(r.display_name, "");
    }
}
