//! Short row names for kernel rows, so that tables of long Debian releases
//! (`6.12.117+deb13-cloud-amd64 (tcg)`) fit 100 columns: the part every kernel row shares at
//! its end (`-cloud-amd64 (tcg)`) moves into a legend printed above the tables, which maps each
//! short name back to the full one. Nothing is cut without the legend saying what it was.

use crate::cases::Case;

/// Kernel row names up to this long stay as they are.
pub const MAX_ROW_NAME: usize = 20;

/// Characters a shared suffix may start at: the separators of release strings and row names
/// (not '.', which would split a version number).
fn boundary(c: char) -> bool {
    matches!(c, '-' | '+' | '_' | ' ' | '~')
}

/// The longest suffix every name shares that starts at a separator and leaves every name a
/// non-empty, distinct rest; "" when there is none (or only one name).
fn shared_suffix(names: &[String]) -> &str {
    let [first, _, ..] = names else {
        return "";
    };
    let mut len = first.len();
    for n in &names[1..] {
        let common = first
            .bytes()
            .rev()
            .zip(n.bytes().rev())
            .take_while(|(a, b)| a == b)
            .count();
        len = len.min(common);
    }
    // Cut back to a char boundary that is a separator, and keep a rest in every name.
    let mut start = first.len() - len;
    loop {
        let ok = first.is_char_boundary(start)
            && first[start..].starts_with(boundary)
            && names.iter().all(|n| n.len() > first.len() - start);
        if ok || start >= first.len() {
            break;
        }
        start += 1;
    }
    let suffix = &first[start..];
    let rests: Vec<&str> = names.iter().map(|n| &n[..n.len() - suffix.len()]).collect();
    let distinct = rests
        .iter()
        .enumerate()
        .all(|(i, r)| !r.is_empty() && !rests[..i].contains(r));
    if distinct { suffix } else { "" }
}

/// Short names for `names` (in their order), or None when every name is short enough already.
/// Without the shared suffix when that makes them short; else `K1`, `K2`, ...
pub fn short_names(names: &[String]) -> Option<Vec<String>> {
    if names.iter().all(|n| n.chars().count() <= MAX_ROW_NAME) {
        return None;
    }
    let suffix = shared_suffix(names);
    let rests: Vec<String> = names
        .iter()
        .map(|n| n[..n.len() - suffix.len()].to_string())
        .collect();
    if rests.iter().all(|n| n.chars().count() <= MAX_ROW_NAME) {
        return Some(rests);
    }
    Some((1..=names.len()).map(|i| format!("K{i}")).collect())
}

/// The kernel row names of the kernel-rows cases, in row order.
fn kernel_row_names(cases: &[Case]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for c in cases.iter().filter(|c| !c.kernel_rows.is_empty()) {
        for n in &c.kernel_rows {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    names
}

/// Rename the rows of kernel-rows cases to short names (see [`short_names`]) and return the
/// legend to print above their tables; None (and nothing renamed) when the names are short.
pub fn shorten_kernel_rows(cases: &mut [Case]) -> Option<String> {
    let long = kernel_row_names(cases);
    let short = short_names(&long)?;
    let map = |n: &str| -> String {
        long.iter()
            .position(|l| l == n)
            .map_or_else(|| n.to_string(), |i| short[i].clone())
    };
    for c in cases.iter_mut().filter(|c| !c.kernel_rows.is_empty()) {
        for r in &mut c.rows {
            r.name = map(&r.name);
        }
        c.kernel_rows = c.kernel_rows.iter().map(|n| map(n)).collect();
        c.baseline = map(&c.baseline);
        c.baseline_absent = c.baseline_absent.as_deref().map(map);
    }
    let w = short.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    let mut out = String::from("kernels (short row names):\n");
    for (s, l) in short.iter().zip(&long) {
        out.push_str(&format!("  {s:<w$} = {l}\n"));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn long_releases_lose_their_shared_tail() {
        let names = v(&[
            "6.1.0-50-cloud-amd64 (tcg)",
            "6.12.117+deb13-cloud-amd64 (tcg)",
        ]);
        assert_eq!(
            short_names(&names).unwrap(),
            v(&["6.1.0-50", "6.12.117+deb13"])
        );
        // Short names stay.
        assert_eq!(short_names(&v(&["a (tcg)", "b (tcg)"])), None);
    }

    #[test]
    fn names_that_share_nothing_useful_are_numbered() {
        // The tail is cut at a separator, never inside a version number.
        let names = v(&[
            "6.12.117+deb13-cloud-amd64 (tcg)",
            "x6.12.117+deb13-cloud-amd64 (tcg)",
        ]);
        assert_eq!(short_names(&names).unwrap(), v(&["6.12.117", "x6.12.117"]));
        // Nothing shared, still long: numbered.
        let names = v(&[
            "linux-6.12.117-custom-build-one",
            "linux-6.12.117-custom-build-two",
        ]);
        assert_eq!(short_names(&names).unwrap(), v(&["K1", "K2"]));
        let one = v(&["6.12.117+deb13-cloud-amd64 (tcg)"]);
        assert_eq!(short_names(&one).unwrap(), v(&["K1"]));
    }

    #[test]
    fn a_suffix_starts_at_a_separator() {
        // Shared bytes "1-cloud" start inside a version number: cut at the '-' after it.
        let names = v(&[
            "6.1-cloud-arm64-kernel-build-41 (kvm)",
            "6.11-cloud-arm64-kernel-build-41 (kvm)",
        ]);
        assert_eq!(shared_suffix(&names), "-cloud-arm64-kernel-build-41 (kvm)");
        assert_eq!(short_names(&names).unwrap(), v(&["6.1", "6.11"]));
    }
}
