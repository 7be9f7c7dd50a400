//! Request bodies as the client sent them, for the compatible surfaces. Judge0 and Piston
//! clients send loosely typed JSON and expect each surface's own refusal for a wrong value,
//! so a raw request struct declares each field as [`Loose`]: absent (`None`), of the expected
//! type, or anything else (kept, for the surface to refuse or reinterpret in its own way).
//! Unknown keys are ignored, as both surfaces do.

use serde::{de::DeserializeOwned, Deserialize, Deserializer};
use serde_json::Value;

/// A present, non-null field: of the expected type, or any other JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Loose<T> {
    Valid(T),
    Invalid(Value),
}

impl<T> Loose<T> {
    /// The value when it has the expected type.
    pub fn valid(self) -> Option<T> {
        match self {
            Loose::Valid(t) => Some(t),
            Loose::Invalid(_) => None,
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Loose<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(match T::deserialize(&v) {
            Ok(t) => Loose::Valid(t),
            Err(_) => Loose::Invalid(v),
        })
    }
}

/// A JSON object read into `T`; anything else (an array above all, which serde would read
/// into a struct field by field) is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Object<T>(pub T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        if !v.is_object() {
            return Err(serde::de::Error::custom("expected a JSON object"));
        }
        T::deserialize(v).map(Object).map_err(serde::de::Error::custom)
    }
}

/// `v` read into `T` when it is a JSON object; `None` otherwise.
pub fn object<T: DeserializeOwned>(v: &Value) -> Option<T> {
    Object::<T>::deserialize(v).ok().map(|o| o.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Raw {
        n: Option<Loose<f64>>,
        s: Option<Loose<String>>,
    }

    #[test]
    fn fields_are_absent_valid_or_kept_as_sent() {
        let r: Raw = object(&json!({"n": 1.5, "s": null, "other": true})).unwrap();
        assert_eq!(r, Raw { n: Some(Loose::Valid(1.5)), s: None });
        let r: Raw = object(&json!({"n": "x", "s": [1]})).unwrap();
        assert_eq!(r.n, Some(Loose::Invalid(json!("x"))));
        assert_eq!(r.s.and_then(Loose::valid), None);
    }

    #[test]
    fn only_objects_are_read_into_structs() {
        assert!(object::<Raw>(&json!([1, "a"])).is_none());
        assert!(object::<Raw>(&json!("x")).is_none());
        assert!(object::<Raw>(&json!({})).is_some());
    }
}
