//! The committed CRDs must be exactly what the Rust types generate (`crdgen`).
use kube::CustomResourceExt;

fn generated() -> String {
    let docs = [
        serde_yaml::to_string(&rce_api::Execution::crd()).expect("Execution CRD"),
        serde_yaml::to_string(&rce_api::Runtime::crd()).expect("Runtime CRD"),
        serde_yaml::to_string(&rce_api::WarmPool::crd()).expect("WarmPool CRD"),
    ];
    docs.join("---\n")
}

#[test]
fn committed_crds_match_the_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/rce.dev.yaml");
    let committed = std::fs::read_to_string(path).expect("crds/rce.dev.yaml");
    assert!(
        committed == generated(),
        "crds/rce.dev.yaml is out of date: run `cargo run -p rce-operator --bin crdgen > crds/rce.dev.yaml`"
    );
}
