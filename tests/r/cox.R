# coxph as tests/test_against_r.py compares it; sourced by reference.R and sensitivity.R.
#
# cox_values(formula, data): c(loglik, <term>.coef, <term>.hr, <term>.lower, <term>.upper,
# <term>.p), Efron ties, Wald 95% CI and p; all NA when R calls a coefficient possibly
# infinite.
suppressPackageStartupMessages(library(survival))

cox_values <- function(formula, data) {
  # R's default convergence (relative change in log-likelihood below eps = 1e-9) can stop
  # one Newton step short: p-values up to 3e-8 off the converged fit, and 1e-8 is compared.
  # A coefficient R calls possibly infinite has no MLE (monotone likelihood): R's finite
  # number is where its iterations stopped, and the contract leaves such a model empty.
  # Such a coefficient moves about one unit per Newton step, and at eps = 1e-11 the
  # log-likelihood settles only after some 25 steps: with the default iter.max = 20 R runs
  # out of iterations instead of calling it infinite. A fit that still runs out of
  # iterations gives no number to compare with: an error, not a value.
  infinite <- FALSE
  control <- coxph.control(eps = 1e-11, iter.max = 100)
  fit <- withCallingHandlers(
    coxph(formula, data, ties = "efron", control = control),
    warning = function(w) {
      if (grepl("may be infinite", conditionMessage(w))) {
        infinite <<- TRUE
        invokeRestart("muffleWarning")
      }
      if (grepl("Ran out of iterations", conditionMessage(w))) {
        stop("coxph did not converge: ", deparse(formula))
      }
    }
  )
  coefs <- summary(fit)$coefficients
  ci <- summary(fit)$conf.int
  terms <- rownames(coefs)
  values <- c(loglik = fit$loglik[2],
              setNames(coefs[, "coef"], paste0(terms, ".coef")),
              setNames(ci[, "exp(coef)"], paste0(terms, ".hr")),
              setNames(ci[, "lower .95"], paste0(terms, ".lower")),
              setNames(ci[, "upper .95"], paste0(terms, ".upper")),
              setNames(coefs[, "Pr(>|z|)"], paste0(terms, ".p")))
  if (infinite) values[] <- NA
  values
}
