//! The built-in policy modules (`account-rbac`, `tenant-roles`), carried by the binary so
//! `latchkey serve` works from any directory: with no policies folder given, the data
//! directory's `policies/` is used, and made with these on first start. A folder is
//! loaded the same way whoever filled it; a binary whose built-ins differ from a folder's
//! copies says so at start, and `latchkey policy install-builtins` replaces them.

use std::io::Write;
use std::path::Path;

/// One built-in module and its manifest, as `policies/` in the repository holds them.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// The file stem: `NAME.wasm` and `NAME.toml`.
    pub name: &'static str,
    /// The compiled module.
    pub module: &'static [u8],
    /// Its manifest.
    pub manifest: &'static str,
}

/// The built-ins, in load order.
pub const BUILTINS: [Builtin; 2] = [
    Builtin {
        name: "account-rbac",
        module: include_bytes!("../../policies/account-rbac.wasm"),
        manifest: include_str!("../../policies/account-rbac.toml"),
    },
    Builtin {
        name: "tenant-roles",
        module: include_bytes!("../../policies/tenant-roles.wasm"),
        manifest: include_str!("../../policies/tenant-roles.toml"),
    },
];

/// How a folder's copy of a built-in compares with the binary's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// Neither file is there (an operator may leave a built-in out on purpose).
    Missing,
    /// Both files are byte for byte the binary's.
    Same,
    /// The module or the manifest differs, or one of them is missing.
    Differs,
}

impl Installed {
    /// The word used in output: `missing`, `same`, `differs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Installed::Missing => "missing",
            Installed::Same => "same",
            Installed::Differs => "differs",
        }
    }
}

/// Each built-in's state in `folder`.
pub fn compare(folder: &Path) -> Vec<(&'static str, Installed)> {
    BUILTINS
        .iter()
        .map(|builtin| {
            let module = std::fs::read(folder.join(format!("{}.wasm", builtin.name))).ok();
            let manifest = std::fs::read(folder.join(format!("{}.toml", builtin.name))).ok();
            let state = match (module, manifest) {
                (None, None) => Installed::Missing,
                (Some(module), Some(manifest))
                    if module == builtin.module && manifest == builtin.manifest.as_bytes() =>
                {
                    Installed::Same
                }
                _ => Installed::Differs,
            };
            (builtin.name, state)
        })
        .collect()
}

/// Write every built-in into `folder` (made if missing), each file replaced whole
/// (written beside, synced, renamed), so a running server's reload never reads half a
/// module. Returns each built-in's state before.
pub fn install(folder: &Path) -> std::io::Result<Vec<(&'static str, Installed)>> {
    std::fs::create_dir_all(folder)?;
    let before = compare(folder);
    for builtin in BUILTINS {
        replace(
            &folder.join(format!("{}.wasm", builtin.name)),
            builtin.module,
        )?;
        replace(
            &folder.join(format!("{}.toml", builtin.name)),
            builtin.manifest.as_bytes(),
        )?;
    }
    Ok(before)
}

/// The data directory's own policies folder, used unless another is given.
pub const DEFAULT_FOLDER: &str = "policies";

/// At start (`serve`, `init`): when `folder` is `data_dir`'s own and does not exist,
/// install the built-ins there; otherwise name, in the log, any built-in whose copy
/// differs from the binary's. Any other folder is never written.
pub fn prepare(data_dir: &Path, folder: &Path) -> std::io::Result<()> {
    if folder == data_dir.join(DEFAULT_FOLDER) && !folder.exists() {
        install(folder)?;
        tracing::info!(folder = %folder.display(), "built-in policies installed");
        return Ok(());
    }
    for (name, state) in compare(folder) {
        if state == Installed::Differs {
            tracing::warn!(
                policy = name,
                folder = %folder.display(),
                "this built-in policy differs from this binary's; `latchkey policy install-builtins` replaces it"
            );
        }
    }
    Ok(())
}

fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".new");
    let aside = std::path::PathBuf::from(aside);
    let mut file = std::fs::File::create(&aside)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&aside, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_fills_a_folder_that_then_compares_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(DEFAULT_FOLDER);
        assert!(
            compare(&folder)
                .iter()
                .all(|(_, s)| *s == Installed::Missing)
        );
        prepare(dir.path(), &folder).unwrap();
        assert!(compare(&folder).iter().all(|(_, s)| *s == Installed::Same));
        // The repository's copies are the binary's.
        let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        assert!(
            compare(&repository)
                .iter()
                .all(|(_, s)| *s == Installed::Same)
        );

        std::fs::write(folder.join("tenant-roles.toml"), "edited").unwrap();
        std::fs::remove_file(folder.join("account-rbac.wasm")).unwrap();
        assert_eq!(
            compare(&folder),
            vec![
                ("account-rbac", Installed::Differs),
                ("tenant-roles", Installed::Differs)
            ]
        );
        let before = install(&folder).unwrap();
        assert_eq!(
            before,
            vec![
                ("account-rbac", Installed::Differs),
                ("tenant-roles", Installed::Differs)
            ]
        );
        assert!(compare(&folder).iter().all(|(_, s)| *s == Installed::Same));
    }

    #[test]
    fn an_existing_folder_elsewhere_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path(), dir.path()).unwrap();
        prepare(dir.path(), &dir.path().join("absent")).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
