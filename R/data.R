#' Wheat yields: the lecture's balanced one-way example
#'
#' Fifty yields in ten groups of five, the "wheat" data of the course's lectures on the
#' ANOVA and on maximum likelihood for the hierarchical normal model (Hoff, Duke STA 610).
#' Check values: `mean(y)` = 16.3064; ANOVA MSE = 1.787206; ML log-likelihood
#' -88.58510486 at \eqn{\mu} = 16.3064, \eqn{\sigma^2} = 1.787206, \eqn{\tau^2} = 0.30992504.
#'
#' @format A data frame with 50 rows and 2 columns:
#' \describe{
#'   \item{y}{Yield (numeric; the lecture gives no unit).}
#'   \item{g}{Group (field) number, integer 1 to 10, five yields each.}
#' }
#' @source The values printed in the course's ANOVA lecture (`g = rep(1:10, each = 5)`);
#'   built by `data-raw/lecture-data.R`.
#' @examples
#' hnm_fit(y ~ 1 | g, wheat)
"wheat"

#' NELS:88 math scores: the lecture's large example
#'
#' 12,974 tenth-grade students in 684 schools from the public-use National Education
#' Longitudinal Study of 1988, as used in the course's lecture. `lmer(mscore ~ 1 +
#' (1 | school), REML = FALSE)` has log-likelihood -46956.633.
#'
#' @format A data frame with 12,974 rows and 8 columns:
#' \describe{
#'   \item{school}{School identifier (factor, 684 levels; the codes are text such as "1011").}
#'   \item{enroll}{School enrolment, as an ordered category code (integer).}
#'   \item{flp}{Share of students on free lunch, as a category code 1 (lowest) to 3 (integer).}
#'   \item{public}{1 for a public school, 0 for a private one.}
#'   \item{urbanicity}{Factor: `rural`, `suburban` or `urban`.}
#'   \item{hwh}{Hours of homework per week reported by the student (integer).}
#'   \item{ses}{Socio-economic status composite, standardised (numeric).}
#'   \item{mscore}{Math test score (standardised T-score scale, mean about 50).}
#' }
#' @source NELS:88 public-use files, as distributed with the course (Hoff, Duke STA 610);
#'   built by `data-raw/lecture-data.R`.
#' @examples
#' summary(hnm_fit(mscore ~ 1 | school, nels))
"nels"
