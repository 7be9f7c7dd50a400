//! Judge0's submission fields: the domain core's table and rendering
//! ([`rce_api::judge0::Field`]), over the shim's view of an Execution.

use std::sync::Arc;

pub use rce_api::judge0::{language_name, Field, NotText, Outputs};
use rce_api::{judge0, ResolvedLimits, Runtime};
use serde_json::{Map, Value};

use crate::{backend::ExecView, catalog, error::ApiError};

/// Parse `fields`: absent or empty → the defaults, `*` → all, else a comma-separated list
/// (upstream: 400 `invalid fields: [a, b]`).
pub fn requested_fields(param: Option<&str>) -> Result<Vec<Field>, ApiError> {
    judge0::requested_fields(param)
        .map_err(|invalid| ApiError::bad_request(format!("invalid fields: [{}]", invalid.join(", "))))
}

/// Must the Execution itself be read to render these fields?
pub fn needs_spec(fields: &[Field]) -> bool {
    fields.iter().any(|f| f.needs_spec())
}

/// Do these fields show an output (so its full bytes must be read when the status holds
/// only an excerpt)?
pub fn needs_outputs(fields: &[Field]) -> bool {
    fields.iter().any(|f| matches!(f, Field::Stdout | Field::Stderr | Field::CompileOutput))
}

/// Seconds with Judge0's decimal rendering ("0.031", "5.0").
pub use rce_api::limits::units::judge0::secs as decimal_secs;

/// Render a submission with the requested fields; `outputs`: the full outputs when the
/// status holds only excerpts of them. `Err(NotText)`: an output is not UTF-8 and
/// `base64_encoded` is off.
pub fn render(
    view: &ExecView,
    fields: &[Field],
    b64: bool,
    runtimes: &[Arc<Runtime>],
    cap: &ResolvedLimits,
    outputs: Option<Outputs>,
) -> Result<Map<String, Value>, NotText> {
    let rt = catalog::find(runtimes, &view.language);
    let spec = view.spec.as_ref();
    let limits = match (rt.as_deref(), spec) {
        (Some(rt), Some(spec)) => catalog::resolve_limits(rt, spec.limits.as_ref(), cap).ok(),
        _ => None,
    };
    let s = judge0::Submission {
        token: &view.name,
        status: &view.status,
        spec,
        annotations: Some(&view.annotations),
        created_at: view.created_at.as_deref(),
        runtime: rt.as_deref(),
        limits,
        outputs: outputs.unwrap_or_else(|| Outputs::from_status(&view.status)),
    };
    judge0::render(&s, fields, b64)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_table_has_judge0s_fields_once_each() {
        assert_eq!(Field::ALL.len(), 35);
        let unique: BTreeSet<_> = Field::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(unique.len(), Field::ALL.len());
        assert!(!needs_spec(&requested_fields(None).unwrap()));
        assert!(needs_spec(&[Field::Stdout, Field::SourceCode]));
        assert!(needs_outputs(&requested_fields(None).unwrap()));
        assert_eq!(
            requested_fields(Some("stdout,bogus,nope")).unwrap_err().message,
            "invalid fields: [bogus, nope]"
        );
    }

    #[test]
    fn decimals_render_like_rails() {
        assert_eq!(decimal_secs(31), "0.031");
        assert_eq!(decimal_secs(5000), "5.0");
    }
}
