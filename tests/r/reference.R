# R's values for tests/test_against_r.py: a second, trusted opinion on sinet_bm.models.
#
# Usage: Rscript reference.R data.csv tasks.csv out.csv
#   data.csv   one row per patient (floats as C99 hex literals, so R reads the exact doubles)
#   tasks.csv  one analysis per row: name, kind, subset, variables
#              subset: an R expression over the data's columns choosing the rows
#              variables: ";"-separated R expressions, by kind
#                km       time; event                   Kaplan-Meier median, log-log 95% CI
#                logrank  time; event; group            survdiff
#                cox      time; event; covariate; ...   coxph, Efron ties, Wald CI and p
#                                                       (converged: see cox.R)
#                fisher   exposure; outcome             fisher.test of the 2x2 table
#                                                       (exact roots: see fisher below)
#                binom    success                       binom.test (Clopper-Pearson)
#   out.csv    name,value with name = <task>.<field>; doubles to 17 significant digits, NA
#              where R has none
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
source(file.path(dirname(script), "cox.R"))  # cox_values, and library(survival)

args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1])
tasks <- read.csv(args[2], colClasses = "character")

survival_formula <- function(v) {
  terms <- if (length(v) > 2) paste(v[-(1:2)], collapse = " + ") else "1"
  as.formula(sprintf("Surv(%s, %s) ~ %s", v[1], v[2], terms))
}

kaplan_meier <- function(v, rows) {
  median <- quantile(survfit(survival_formula(v), rows, conf.type = "log-log"), 0.5)
  c(median = unname(median$quantile), lower = unname(median$lower),
    upper = unname(median$upper))
}

logrank <- function(v, rows) {
  test <- survdiff(survival_formula(v), rows)
  c(chisq = test$chisq, p = pchisq(test$chisq, length(test$n) - 1, lower.tail = FALSE))
}

cox <- function(v, rows) cox_values(survival_formula(v), rows)  # see cox.R

# fisher.test finds the odds ratio and its CI with uniroot's default tolerance,
# .Machine$double.eps^0.25 (about 1e-4 on its scale): up to 1e-3 relative off the root.
# The same function with a tight tolerance gives the exact conditional MLE and CI.
exact_fisher_test <- stats::fisher.test
environment(exact_fisher_test) <- list2env(
  list(uniroot = function(...) stats::uniroot(..., tol = 1e-13)),
  parent = asNamespace("stats")
)

fisher <- function(v, rows) {
  exposed <- as.logical(eval(str2lang(v[1]), rows))
  outcome <- as.logical(eval(str2lang(v[2]), rows))
  a <- sum(exposed & outcome)
  b <- sum(exposed & !outcome)
  c <- sum(!exposed & outcome)
  d <- sum(!exposed & !outcome)
  test <- exact_fisher_test(matrix(c(a, c, b, d), 2))  # column-major: rows (a, b), (c, d)
  c(estimate = unname(test$estimate), lower = test$conf.int[1], upper = test$conf.int[2],
    p = test$p.value)
}

binomial <- function(v, rows) {
  successes <- sum(eval(str2lang(v[1]), rows))
  test <- binom.test(successes, nrow(rows))
  c(estimate = unname(test$estimate), lower = test$conf.int[1], upper = test$conf.int[2])
}

analyses <- list(km = kaplan_meier, logrank = logrank, cox = cox, fisher = fisher,
                 binom = binomial)
results <- c()
for (i in seq_len(nrow(tasks))) {
  task <- tasks[i, ]
  keep <- eval(str2lang(task$subset), data)
  rows <- data[keep & !is.na(keep), ]
  values <- analyses[[task$kind]](strsplit(task$variables, ";")[[1]], rows)
  results <- c(results, setNames(values, paste(task$name, names(values), sep = ".")))
}
write.csv(data.frame(name = names(results), value = sprintf("%.17g", results)), args[3],
          row.names = FALSE)
