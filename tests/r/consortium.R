# R's values for tests/test_consortium_against_r.py: a second opinion on the pooled rows of a
# finished multi-centre run (docs/estimates.md, section 6), from R alone.
#
# Usage: Rscript consortium.R folder
# Reads from folder (floats as C99 hex literals, which R reads bit for bit; flags 0/1):
#   union.csv   centre, os_months, dead, bm, age_years, male, g2, g3, grade_known
#               the union's stage IV patients (eligible and stage IV), one row each
#   hr.csv      quantity, centre, hr, lower, upper, level   a centre's Wald CI of its HR
#   plo.csv     quantity, centre, x, m                      a centre's proportion x/m
#   tables.csv  quantity, centre, a, b, c, d, level         a centre's 2x2 [[a, b], [c, d]]
# Writes folder/r.csv: estimate,field,value (doubles to 17 significant digits, NA where R
# has none), estimate named as in estimates.csv:
#   hr_os_bm_{crude,adjusted}_stratified  value, ci_lower, ci_upper, p_value
#                                          coxph(Surv(os_months, dead) ~ bm [+ age_years +
#                                          male + g2 + g3] + strata(centre), ties = "efron")
#   X_fe, X_re                             value, ci_lower, ci_upper, p_value
#   X_re_pi                                value, ci_lower, ci_upper    predict() of the REML fit
#   X_tau2, X_i2 (a fraction)              value
#   X_q                                    value, p_value
#                                          rma(method = "FE"), rma(method = "REML",
#                                          test = "knha"), back-transformed (exp, plogis)
#   test_os_logrank_stratified             value (chi-square), p_value   survdiff(+ strata)
#   T_mh                                   value, ci_lower, ci_upper, p_value, statistic,
#                                          degenerate (the number of centres whose table has
#                                          an empty row or column), zero_cell (... a cell 0)
#                                          mantelhaen.test; value as R gives it (0 when every
#                                          centre's ad is 0), NA where R refuses or gives NaN
#   surv_os_{bm,no_bm}_<m>                 value: the actuarial life table on [j, j + 1)
#                                          months from cut(right = FALSE) on the union
#   plo_correction                         x0_y, x0_v, xm_y, xm_v: escalc("PLO") at x = 0 of
#                                          10 and x = 10 of 10 minus the contract's formula
#                                          (x + 0.5 of m + 1): 0 where they agree
if (!requireNamespace("metafor", quietly = TRUE)) {
  cat("R package metafor is not installed\n", file = stderr())
  quit(status = 3)
}
suppressPackageStartupMessages({
  library(survival)
  library(metafor)
})

folder <- commandArgs(trailingOnly = TRUE)[1]
path <- function(name) file.path(folder, name)
out <- data.frame(estimate = character(), field = character(), value = numeric())
put <- function(estimate, values) {
  values <- unlist(values)
  out <<- rbind(out, data.frame(estimate = estimate, field = names(values),
                                value = unname(values)))
}
na <- function(x) if (length(x) == 0 || is.null(x)) NA_real_ else as.numeric(x)

# as pooling.R: metafor's REML iterated to the root, not stopped at its default 1e-5
reml_control <- list(threshold = 1e-12, maxiter = 1000)

# --- the stratified Cox models on the union ---------------------------------------------
union <- read.csv(path("union.csv"))
union$centre <- factor(union$centre)
level <- read.csv(path("hr.csv"))$level[1]
cox <- function(estimate, formula, data) {
  fit <- coxph(formula, data = data, ties = "efron")
  s <- summary(fit, conf.int = level)
  put(estimate, list(value = s$conf.int["bm", "exp(coef)"],
                     ci_lower = s$conf.int["bm", 3], ci_upper = s$conf.int["bm", 4],
                     p_value = s$coefficients["bm", "Pr(>|z|)"]))
}
cox("hr_os_bm_crude_stratified", Surv(os_months, dead) ~ bm + strata(centre), union)
cox("hr_os_bm_adjusted_stratified",
    Surv(os_months, dead) ~ bm + age_years + male + g2 + g3 + strata(centre),
    union[union$grade_known == 1, ])

# --- the meta-analyses ------------------------------------------------------------------
meta <- function(name, y, v, back) {
  fe <- rma(y, v, method = "FE", level = 100 * level)
  put(paste0(name, "_fe"), list(value = back(fe$b[1]), ci_lower = back(fe$ci.lb),
                                ci_upper = back(fe$ci.ub), p_value = fe$pval))
  put(paste0(name, "_q"), list(value = fe$QE, p_value = fe$QEp))
  if (length(y) < 2) return()
  re <- rma(y, v, method = "REML", test = "knha", level = 100 * level,
            control = reml_control)
  # the contract's PI is the 95% one whatever the level (ours: at the run's level;
  # the same here, where the level is 0.95)
  pred <- predict(re, level = 95)
  put(paste0(name, "_re"), list(value = back(re$b[1]), ci_lower = back(re$ci.lb),
                                ci_upper = back(re$ci.ub), p_value = re$pval))
  put(paste0(name, "_re_pi"), list(value = back(re$b[1]), ci_lower = back(pred$pi.lb),
                                   ci_upper = back(pred$pi.ub)))
  put(paste0(name, "_tau2"), list(value = re$tau2))
  put(paste0(name, "_i2"), list(value = re$I2 / 100))
}

hr <- read.csv(path("hr.csv"))
for (name in unique(hr$quantity)) {
  rows <- hr[hr$quantity == name, ]
  z <- qnorm((1 + rows$level) / 2)
  y <- log(rows$hr)
  v <- ((log(rows$upper) - log(rows$lower)) / (2 * z))^2
  meta(name, y, v, exp)
}

plo <- read.csv(path("plo.csv"))
for (name in unique(plo$quantity)) {
  rows <- plo[plo$quantity == name, ]
  effect <- escalc(measure = "PLO", xi = rows$x, ni = rows$m)  # add 1/2 where x = 0 or m
  meta(name, as.vector(effect$yi), as.vector(effect$vi), plogis)
}
edge <- escalc(measure = "PLO", xi = c(0, 10), ni = c(10, 10))
contract_y <- c(log(0.5 / 10.5), log(10.5 / 0.5))
contract_v <- c(1 / 0.5 + 1 / 10.5, 1 / 10.5 + 1 / 0.5)
put("plo_correction", list(x0_y = edge$yi[1] - contract_y[1], x0_v = edge$vi[1] - contract_v[1],
                           xm_y = edge$yi[2] - contract_y[2], xm_v = edge$vi[2] - contract_v[2]))

# --- the stratified log-rank on the union -----------------------------------------------
test <- survdiff(Surv(os_months, dead) ~ bm + strata(centre), union)
put("test_os_logrank_stratified",
    list(value = test$chisq, p_value = pchisq(test$chisq, 1, lower.tail = FALSE)))

# --- Mantel-Haenszel over the centres' 2x2 tables ---------------------------------------
tables <- read.csv(path("tables.csv"))
for (name in unique(tables$quantity)) {
  rows <- tables[tables$quantity == name, ]
  # column-major: x[1, 1, ] = a, x[2, 1, ] = c, x[1, 2, ] = b, x[2, 2, ] = d
  x <- array(t(as.matrix(rows[, c("a", "c", "b", "d")])), dim = c(2, 2, nrow(rows)))
  degenerate <- sum(apply(x, 3, function(t) any(rowSums(t) == 0) || any(colSums(t) == 0)))
  zero_cell <- sum(apply(x, 3, function(t) any(t == 0)))
  test <- tryCatch(mantelhaen.test(x, correct = TRUE, conf.level = rows$level[1]),
                   error = function(e) NULL)
  if (is.null(test)) {
    put(paste0(name, "_mh"), list(value = NA, ci_lower = NA, ci_upper = NA, p_value = NA,
                                  statistic = NA, degenerate = degenerate,
                                  zero_cell = zero_cell))
    next
  }
  # R's estimate as it gives it (0 where every Σad/n is 0, Inf where every Σbc/n is 0);
  # its CI then NaN, recorded NA
  fin <- function(x) if (is.finite(x)) x else NA_real_
  put(paste0(name, "_mh"),
      list(value = na(test$estimate), ci_lower = fin(test$conf.int[1]),
           ci_upper = fin(test$conf.int[2]), p_value = na(test$p.value),
           statistic = na(test$statistic), degenerate = degenerate, zero_cell = zero_cell))
}

# --- the actuarial life table, from the union's rows ------------------------------------
# intervals [j, j + 1) for j = 0..119 and [120, Inf); r = those not gone before the
# interval, S = prod(1 - d / (r - c / 2)), an interval with nobody at risk leaving S as it was
k <- 120
for (group in c("bm", "no_bm")) {
  rows <- union[union$bm == (group == "bm"), ]
  interval <- cut(rows$os_months, breaks = c(0:k, Inf), right = FALSE, labels = FALSE)
  count <- function(keep) as.vector(table(factor(interval[keep], levels = 1:(k + 1))))
  leaving <- count(rep(TRUE, nrow(rows)))
  deaths <- count(rows$dead == 1)[1:k]
  censored <- count(rows$dead == 0)[1:k]
  at_risk <- nrow(rows) - c(0, cumsum(leaving))[1:k]
  effective <- at_risk - censored / 2
  survival <- cumprod(ifelse(effective > 0, 1 - deaths / effective, 1))
  for (m in c(12, 60, 120)) put(paste0("surv_os_", group, "_", m), list(value = survival[m]))
}

write.csv(data.frame(estimate = out$estimate, field = out$field,
                     value = ifelse(is.na(out$value), "NA", sprintf("%.17g", out$value))),
          path("r.csv"), row.names = FALSE, quote = FALSE)
