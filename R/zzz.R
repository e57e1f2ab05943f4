# Load-time registration of methods for generics in suggested packages.

.onLoad <- function(libname, pkgname) {
  for (generic in c("tidy", "glance", "augment")) {
    s3_register(paste0("generics::", generic), "hnm_fit")
  }
  for (generic in c("insight::find_formula", "insight::get_parameters", "insight::get_variance",
                     "insight::get_predicted", "insight::get_data",
                     "insight::get_loglikelihood", "insight::find_parameters",
                     "insight::n_parameters", "insight::get_df", "insight::get_statistic",
                     "performance::r2",
                     "performance::check_singularity", "performance::check_convergence",
                     "performance::model_performance", "performance::performance_aic",
                     "performance::performance_aicc", "parameters::model_parameters",
                     "emmeans::recover_data", "emmeans::emm_basis")) {
    s3_register(generic, "hnm_fit")  # R/ecosystem.R
  }
  # lme4's and lmerTest's generics, so that they reach hnm's methods (and lme4's own functions
  # work on hnm fits: isSingular() calls getME()) whichever package is attached last.
  for (generic in c("lme4::ngrps", "lme4::getME", "lme4::refit", "lme4::refitML",
                    "lmerTest::contest")) {
    s3_register(generic, "hnm_fit")
  }
}

# Registers `<generic>.<class>` from hnm's namespace as a method of `package::generic` now if
# that package is loaded, and again whenever it is loaded later (the approach of vctrs'
# s3_register), so hnm need not import the package.
s3_register <- function(generic, class) {
  pieces <- strsplit(generic, "::", fixed = TRUE)[[1L]]
  package <- pieces[[1L]]
  name <- pieces[[2L]]
  method <- get(paste0(name, ".", class), envir = asNamespace("hnm"))
  register <- function(...) {
    envir <- asNamespace(package)
    if (exists(name, envir = envir)) registerS3method(name, class, method, envir = envir)
  }
  setHook(packageEvent(package, "onLoad"), register)
  if (isNamespaceLoaded(package)) register()
  invisible()
}
