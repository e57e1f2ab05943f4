# nlme's generics, re-exported as lme4 does, so fixef(fit) works with only hnm attached.

#' @importFrom nlme fixef
#' @export
nlme::fixef

#' @importFrom nlme VarCorr
#' @export
nlme::VarCorr

#' @importFrom nlme ranef
#' @export
nlme::ranef
