// Forwards R's routine registration to the Rust static library, so the linker keeps it,
// and installs extendr's panic hook so a Rust panic reaches R as a clean error.

void R_init_hnm_extendr(void *dll);
void register_extendr_panic_hook(void);

void R_init_hnm(void *dll) {
    register_extendr_panic_hook();
    R_init_hnm_extendr(dll);
}
