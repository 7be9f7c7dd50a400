//! The OpenAPI document's frame; its paths come from the handlers' annotations, collected
//! by the router that serves them.

use utoipa::{
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

/// The document's frame: info, tags and security schemes. Paths and schemas are added by the
/// router (`routes::table`), from the same list that serves them.
#[derive(OpenApi)]
#[openapi(
    info(title = "rce api-shim", description = "rce's REST API: the seed executor's API, Judge0 CE 1.13.1 and Piston v2 compatible surfaces, and rce's own with live streams."),
    modifiers(&Security),
    tags(
        (name = "seed", description = "The seed executor's API, unchanged"),
        (name = "rce", description = "rce's own API"),
        (name = "judge0", description = "Judge0 CE 1.13.1 compatible"),
        (name = "piston", description = "Piston v2 compatible"),
        (name = "meta", description = "Health, metrics, this document"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        c.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        c.add_security_scheme(
            "judge0_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Auth-Token"))),
        );
    }
}

/// The frame, without paths.
pub fn frame() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
