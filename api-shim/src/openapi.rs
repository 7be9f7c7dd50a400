//! The OpenAPI document, generated from the handlers' annotations and types.

use utoipa::{
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

use crate::{routes, views};

#[derive(OpenApi)]
#[openapi(
    info(title = "rce api-shim", description = "rce's REST API: the seed executor's API, Judge0 CE 1.13.1 and Piston v2 compatible surfaces, and rce's own with live streams."),
    paths(
        routes::seed::execute,
        routes::seed::status,
        routes::native::create,
        routes::native::get_one,
        routes::native::events,
        routes::native::ws,
        routes::native::languages,
        routes::judge0::handlers::create,
        routes::judge0::handlers::get_one,
        routes::judge0::handlers::batch_create,
        routes::judge0::handlers::batch_get,
        routes::judge0::handlers::languages,
        routes::judge0::handlers::language,
        routes::judge0::handlers::statuses,
        routes::judge0::handlers::about,
        routes::judge0::handlers::config_info,
        routes::piston::handlers::execute,
        routes::piston::handlers::runtimes,
        routes::meta::health,
        routes::meta::ready,
        routes::meta::metrics,
        routes::meta::openapi,
    ),
    components(schemas(
        views::ExecutionView,
        routes::seed::SeedExecuteRequest,
        routes::seed::SeedExecuteResponse,
        routes::native::CreateExecution,
        routes::native::LanguageInfo,
        routes::piston::handlers::PistonRuntime,
        routes::piston::handlers::PistonExecuteRequest,
    )),
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

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
