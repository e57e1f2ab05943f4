//! Writes `R/extendr-wrappers.R` from the module metadata (what `rextendr::document()` does).
//! Run from `src/rust` by `tools/document.sh`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let wrapper_path = "../../R/extendr-wrappers.R";
    let wrappers = hnm::get_hnm_metadata().make_r_wrappers(true, "hnm").map_err(|e| format!("failed to generate wrappers: {e}"))?;
    std::fs::write(wrapper_path, wrappers).map_err(|e| format!("failed to write {wrapper_path}: {e}"))?;
    Ok(())
}
