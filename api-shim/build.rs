//! Builds the playground's script (CodeMirror 6 and the page's code, from
//! `api-shim/playground`) with `hack/playground.sh` into `OUT_DIR/playground.js`, which
//! `routes::meta` embeds. The npm packages and the bundle are cached outside the checkout
//! (`$RCE_CACHE/playground`, keyed by the lockfile and the sources), and this script reruns
//! only when those sources change.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("the workspace root").to_path_buf();
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("playground.js");
    let script = root.join("hack/playground.sh");

    for p in [
        "playground/package.json",
        "playground/package-lock.json",
        "playground/samples.mjs",
        "playground/src",
    ] {
        rerun(&manifest.join(p));
    }
    rerun(&script);
    rerun(&root.join("hack/common.sh"));
    // The sample programs: each language's tests directory (a directory is watched whole;
    // not all of sandbox-images/langs, whose runtime.yaml files do not matter here).
    let langs = root.join("sandbox-images/langs");
    if let Ok(dirs) = std::fs::read_dir(&langs) {
        for d in dirs.flatten() {
            let tests = d.path().join("tests");
            if tests.is_dir() {
                rerun(&tests);
            }
        }
    }
    println!("cargo:rerun-if-env-changed=RCE_CACHE");

    let status = Command::new("bash").arg(&script).arg(&out).status();
    match status {
        Ok(s) if s.success() && out.is_file() => {}
        Ok(s) => panic!(
            "building the playground's script failed ({s}): `hack/playground.sh` needs Node.js \
             and npm (Debian: apt-get install nodejs npm) and the npm registry for its first \
             `npm ci`; see its messages above"
        ),
        Err(e) => panic!("could not run {}: {e}", script.display()),
    }
}

fn rerun(p: &Path) {
    println!("cargo:rerun-if-changed={}", p.display());
}
