# R's values for tests/test_pooling_against_r.py: a second opinion on sinet_bm.pooling.
#
# Usage: Rscript pooling.R folder
# Reads from folder (floats as C99 hex literals, which R reads bit for bit; flags 0/1):
#   meta.csv      case, level, y, v          one row per centre
#   plo.csv       case, x, m                 one row per centre: a proportion x/m
#   mh.csv        case, level, a, b, c, d    one row per centre: the 2x2 table [[a, b], [c, d]]
#   logrank.csv   case, centre, time, status, group
#   life.csv      case, width, horizon, time, dead
# Writes folder/r.csv: name,value; doubles to 17 significant digits, NA where R has none.
#   meta.<case>.fe.{estimate,se,lower,upper,p,q,q_p}   rma(method = "FE")
#   meta.<case>.re.{estimate,se,lower,upper,p,tau2,i2,q,q_p,pi_lower,pi_upper}
#                                                       rma(method = "REML", test = "knha")
#                                                       and predict(); i2 as a fraction
#   plo.<case>.{y,v}.<i>                                escalc("PLO"), centre i (1-based)
#   mh.<case>.{estimate,lower,upper,statistic,p}         mantelhaen.test(correct = TRUE)
#   logrank.<case>.{o_minus_e,variance,chisq,p}         survdiff(... + strata(centre))
#   life.<case>.{at_risk,deaths,censored,survival}.<j>  the actuarial table, interval j
#                                                       (1-based), from cut() and table()
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
results <- c()
put <- function(prefix, values) {
  results <<- c(results, setNames(values, paste(prefix, names(values), sep = ".")))
}

# metafor stops Fisher scoring when τ² changes by less than 1e-5, which leaves τ² (and all
# that depends on it) off the REML root: 1.6e-8 relative in the heterogeneous case. Ours is
# solved to machine precision, so R is asked to iterate to 1e-12 as well.
reml_control <- list(threshold = 1e-12, maxiter = 1000)

meta <- read.csv(path("meta.csv"))
for (case in unique(meta$case)) {
  rows <- meta[meta$case == case, ]
  level <- 100 * rows$level[1]
  fe <- rma(rows$y, rows$v, method = "FE", level = level)
  put(paste("meta", case, "fe", sep = "."),
      c(estimate = fe$b[1], se = fe$se, lower = fe$ci.lb, upper = fe$ci.ub, p = fe$pval,
        q = fe$QE, q_p = fe$QEp))
  if (nrow(rows) < 2) next  # a random-effects model needs two centres
  re <- rma(rows$y, rows$v, method = "REML", test = "knha", level = level,
            control = reml_control)
  pred <- predict(re)
  put(paste("meta", case, "re", sep = "."),
      c(estimate = re$b[1], se = re$se, lower = re$ci.lb, upper = re$ci.ub, p = re$pval,
        tau2 = re$tau2, i2 = re$I2 / 100, q = re$QE, q_p = re$QEp,
        pi_lower = pred$pi.lb, pi_upper = pred$pi.ub))
}

plo <- read.csv(path("plo.csv"))
for (case in unique(plo$case)) {
  rows <- plo[plo$case == case, ]
  effect <- escalc(measure = "PLO", xi = rows$x, ni = rows$m)  # add 1/2 where x = 0 or m
  put(paste("plo", case, sep = "."),
      c(setNames(as.vector(effect$yi), paste0("y.", seq_len(nrow(rows)))),
        setNames(as.vector(effect$vi), paste0("v.", seq_len(nrow(rows))))))
}

mh <- read.csv(path("mh.csv"))
for (case in unique(mh$case)) {
  rows <- mh[mh$case == case, ]
  # column-major: x[1, 1, ] = a, x[2, 1, ] = c, x[1, 2, ] = b, x[2, 2, ] = d
  x <- array(t(as.matrix(rows[, c("a", "c", "b", "d")])), dim = c(2, 2, nrow(rows)))
  test <- mantelhaen.test(x, correct = TRUE, conf.level = rows$level[1])
  put(paste("mh", case, sep = "."),
      c(estimate = unname(test$estimate), lower = test$conf.int[1],
        upper = test$conf.int[2], statistic = unname(test$statistic), p = test$p.value))
}

logrank <- read.csv(path("logrank.csv"))
for (case in unique(logrank$case)) {
  rows <- logrank[logrank$case == case, ]
  rows$group <- rows$group == 1
  test <- survdiff(Surv(time, status) ~ group + strata(centre), rows)
  # with strata(), obs and exp are groups x strata; var is summed over the strata already
  total <- function(x) if (is.matrix(x)) rowSums(x) else x
  put(paste("logrank", case, sep = "."),
      c(o_minus_e = unname(total(test$obs)[2] - total(test$exp)[2]),
        variance = test$var[2, 2], chisq = test$chisq,
        p = pchisq(test$chisq, 1, lower.tail = FALSE)))
}

# The actuarial life table of the contract on the rows of all centres together: intervals
# [j w, (j + 1) w) with the ends as the doubles w * j, a last one [H, Inf) for the times from
# the horizon on; r = those not gone before the interval, S = prod(1 - d / (r - c / 2)),
# an interval with nobody at risk leaving S as it was.
life <- read.csv(path("life.csv"))
for (case in unique(life$case)) {
  rows <- life[life$case == case, ]
  width <- rows$width[1]
  k <- round(rows$horizon[1] / width)
  interval <- cut(rows$time, breaks = c(width * (0:k), Inf), right = FALSE, labels = FALSE)
  count <- function(keep) as.vector(table(factor(interval[keep], levels = 1:(k + 1))))
  leaving <- count(rep(TRUE, nrow(rows)))
  deaths <- count(rows$dead == 1)[1:k]
  censored <- count(rows$dead == 0)[1:k]
  at_risk <- nrow(rows) - c(0, cumsum(leaving))[1:k]
  effective <- at_risk - censored / 2
  survival <- cumprod(ifelse(effective > 0, 1 - deaths / effective, 1))
  put(paste("life", case, sep = "."),
      c(setNames(at_risk, paste0("at_risk.", 1:k)), setNames(deaths, paste0("deaths.", 1:k)),
        setNames(censored, paste0("censored.", 1:k)),
        setNames(survival, paste0("survival.", 1:k))))
}

write.csv(data.frame(name = names(results), value = sprintf("%.17g", results)),
          path("r.csv"), row.names = FALSE)
