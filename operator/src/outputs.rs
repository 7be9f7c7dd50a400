//! Where the full outputs live when the status holds only an excerpt of them (pure: the
//! ConfigMaps are built here, created by the controller).
//!
//! An Execution's status is stored in etcd, whose object limit (about 1.5 MiB) counts the
//! JSON-escaped text: 4 MiB of stdout and 4 MiB of stderr, or far less output made of `<`
//! (six bytes each once escaped), cannot be in it. Redis is only a cache. So the status keeps
//! an excerpt (at most [`STATUS_EXCERPT_BYTES`] of each output) and the exact bytes go to
//! ConfigMaps owned by the Execution (deleted with it by the garbage collector):
//! `<execution>-output-<i>`, i from 0, each with one `binaryData` key `part` of at most
//! [`OUTPUT_PART_BYTES`], the parts concatenated being stdout ++ stderr ++ compile output
//! ([`rce_api::StoredOutput`] gives the names and lengths).

use std::collections::BTreeMap;

use k8s_openapi::{api::core::v1::ConfigMap, ByteString};
use kube::{api::ObjectMeta, Resource, ResourceExt};
#[cfg(doc)]
use rce_api::STATUS_EXCERPT_BYTES;
use rce_api::{Execution, EXECUTION_LABEL, OUTPUT_PART_BYTES};

/// The one `binaryData` key of an output ConfigMap.
pub const PART_KEY: &str = "part";
/// Label on every output ConfigMap.
pub const OUTPUT_LABEL: &str = "rce.dev/output";

/// Name of the output ConfigMap `index` (0-based) of the Execution named `execution`.
pub fn config_map_name(execution: &str, index: usize) -> String {
    format!("{execution}-output-{index}")
}

/// The output ConfigMaps of `exec` holding `bytes`, in order.
pub fn config_maps(exec: &Execution, bytes: &[u8]) -> Vec<ConfigMap> {
    let name = exec.name_any();
    bytes
        .chunks(OUTPUT_PART_BYTES)
        .enumerate()
        .map(|(i, part)| ConfigMap {
            metadata: ObjectMeta {
                name: Some(config_map_name(&name, i)),
                namespace: exec.namespace(),
                labels: Some(BTreeMap::from([
                    (EXECUTION_LABEL.to_string(), crate::names::label_value(&name)),
                    (OUTPUT_LABEL.to_string(), "true".to_string()),
                ])),
                owner_references: exec.controller_owner_ref(&()).map(|o| vec![o]),
                ..Default::default()
            },
            binary_data: Some(BTreeMap::from([(PART_KEY.to_string(), ByteString(part.to_vec()))])),
            ..Default::default()
        })
        .collect()
}

/// The part a ConfigMap holds.
pub fn part_of(cm: &ConfigMap) -> Option<&[u8]> {
    cm.binary_data.as_ref()?.get(PART_KEY).map(|b| b.0.as_slice())
}

/// Is `cm` controlled by `exec` (not by an earlier Execution of the same name, nor anyone's
/// else)?
pub fn owned_by(cm: &ConfigMap, exec: &Execution) -> bool {
    let uid = exec.uid();
    cm.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| Some(&o.uid) == uid.as_ref() && o.controller == Some(true) && o.kind == "Execution")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_owned_bounded_and_in_order() {
        let exec: Execution = serde_yaml::from_str(
            "{apiVersion: rce.dev/v1alpha1, kind: Execution, metadata: {name: big, namespace: ns, uid: u-1}, spec: {language: c}}",
        )
        .unwrap();
        let bytes: Vec<u8> = (0..OUTPUT_PART_BYTES * 2 + 5).map(|i| (i % 251) as u8).collect();
        let cms = config_maps(&exec, &bytes);
        assert_eq!(cms.len(), 3);
        let names: Vec<String> = cms.iter().map(|c| c.name_any()).collect();
        assert_eq!(names, ["big-output-0", "big-output-1", "big-output-2"]);
        let back: Vec<u8> = cms.iter().flat_map(|c| part_of(c).unwrap().to_vec()).collect();
        assert_eq!(back, bytes);
        assert!(cms.iter().all(|c| part_of(c).unwrap().len() <= OUTPUT_PART_BYTES));
        assert!(cms.iter().all(|c| owned_by(c, &exec) && c.namespace().as_deref() == Some("ns")));
        let o = &cms[0].metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((o.kind.as_str(), o.name.as_str(), o.controller), ("Execution", "big", Some(true)));
        // Under a ConfigMap's 1 MiB, with its metadata.
        let json = serde_json::to_string(&cms[0]).unwrap();
        assert!(json.len() < 1024 * 1024 + 4096, "{}", json.len());
        let mut other = cms[0].clone();
        other.metadata.owner_references.as_mut().unwrap()[0].uid = "u-2".into();
        assert!(!owned_by(&other, &exec));
    }
}
