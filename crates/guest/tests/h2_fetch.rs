//! The kernel fetcher against Debian's archive (network; run by hand with `--ignored`): an
//! empty cache gets the package through the private apt state, and the second call reuses it.

use contract::Arch;
use guest::fetch;

#[test]
#[ignore = "downloads about 30 MB from the Debian archive of this host's apt sources"]
fn an_empty_cache_fetches_the_6_1_arm64_package_then_reuses_it() {
    if fetch::which_in_path("apt-get").is_none() {
        eprintln!("skipping: not a Debian-family host");
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let deb = fetch::fetch("6.1", Arch::Arm64, cache.path()).unwrap_or_else(|e| panic!("{e}"));
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("linux-image-6.1.") && name.contains("-cloud-arm64-unsigned_"),
        "{name}"
    );
    assert!(name.ends_with("_arm64.deb"), "{name}");
    assert!(std::fs::metadata(&deb).unwrap().len() > 1 << 20);
    // The private apt state stays under the cache dir.
    assert!(cache.path().join("apt/lists").is_dir());
    assert_eq!(fetch::fetch("6.1", Arch::Arm64, cache.path()).unwrap(), deb);
}
