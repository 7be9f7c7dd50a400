//! Prints the CustomResourceDefinitions of rce's resources as YAML (committed under crds/).
use kube::CustomResourceExt;

fn main() -> Result<(), serde_yaml::Error> {
    let docs = [
        serde_yaml::to_string(&rce_api::Execution::crd())?,
        serde_yaml::to_string(&rce_api::Runtime::crd())?,
        serde_yaml::to_string(&rce_api::WarmPool::crd())?,
    ];
    print!("{}", docs.join("---\n"));
    Ok(())
}
