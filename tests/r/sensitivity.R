# R's values for the section 4 comparisons of tests/test_against_r.py: a second opinion on
# sinet_bm.sensitivity, including one on the counting-process data we build.
#
# Usage: Rscript sensitivity.R folder
# Reads from folder (floats as C99 hex literals, flags 0/1, an empty field = missing):
#   settings.csv   name,value: landmarks, cif_times (";"-separated, may be empty), horizon
#   patients.csv   optional; stage IV patients in our order: os_months, dead, bm, bm_months,
#                  age_years, male, grade (G1/G2/G3 or missing)
#   intervals.csv  with patients.csv: our counting-process data (sensitivity.bm_intervals)
#   sre.csv        optional; BM patients in our order: time, cause (0 censored, 1 SRE,
#                  2 death first), antiresorptive, exposure_start (sensitivity.sre_times)
#   exposure.csv   with sre.csv: our counting-process data (sensitivity.exposure_intervals)
# Writes to folder:
#   r.csv          name,value; doubles to 17 significant digits, NA where R has none
#                  timedep.*     coxph on our BM intervals     (cox.R's names)
#                  timedep_r.*   coxph on the intervals built here by tmerge, and .patients
#                  landmark_<m>.n, landmark_<m>.bm_landmark.*
#                  rmst.<0|1>.{n,rmean,se,lower,upper}, rmst.diff.{estimate,lower,upper}
#                  cif.<0|1>.n, cif.<0|1>.<time>  summary.survfit(extend = FALSE): NA where
#                                                 a time is beyond the arm's last follow-up
#                  sre_timedep.*, sre_timedep_r.*  as timedep, for the SRE model
#   r_intervals.csv, r_exposure.csv   the intervals built here: id, start, stop, event,
#                  covariate (ids = 0-based position among the patients kept, as ours)
#   r_curves.csv   arm, time, n_risk, cif_1, cif_2: multi-state survfit's whole curve
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
source(file.path(dirname(script), "cox.R"))  # cox_values, and library(survival)

folder <- commandArgs(trailingOnly = TRUE)[1]
path <- function(name) file.path(folder, name)
settings <- read.csv(path("settings.csv"), colClasses = "character")
setting <- function(name) {
  text <- settings$value[settings$name == name]
  if (is.na(text) || text == "") numeric() else as.numeric(strsplit(text, ";")[[1]])
}

results <- c()
add <- function(prefix, values) {
  results <<- c(results, setNames(values, paste(prefix, names(values), sep = ".")))
}
number <- function(x) ifelse(is.na(x), "NA", sprintf("%.17g", x))
write_intervals <- function(frame, name) {
  frame[] <- lapply(frame, function(column) number(as.numeric(column)))
  write.csv(frame, path(name), row.names = FALSE, quote = FALSE)
}

# Counting-process data from one row per patient, by survival::tmerge: a time-dependent
# 0/1 covariate switching on at `switch` (NA: never); on or before time 0 it holds from 0,
# on or after the end of follow-up it never switches on. Patients without follow-up have
# no interval of positive length and are left out (tmerge refuses an interval (0, 0]).
counting_process <- function(patients, time, event, switch, covariate, keep = character()) {
  patients$id <- seq_len(nrow(patients)) - 1
  patients$.time <- patients[[time]]
  patients$.event <- patients[[event]]
  patients$.switch <- switch
  followed <- patients[patients$.time > 0, ]
  # (tmerge fails on a data1 of the id alone: .time keeps it company)
  base <- tmerge(followed[, c("id", ".time", keep)], followed, id = id,
                 .outcome = event(.time, .event))
  intervals <- tmerge(base, followed, id = id, .covariate = tdc(.switch))
  out <- data.frame(id = intervals$id, start = intervals$tstart, stop = intervals$tstop,
                    event = intervals$.outcome, covariate = intervals$.covariate)
  names(out)[4:5] <- c(event, covariate)
  cbind(out, intervals[, keep, drop = FALSE])
}

# --- BM as a time-dependent covariate, and landmarks ----------------------------------
if (file.exists(path("patients.csv"))) {
  patients <- read.csv(path("patients.csv"), colClasses = c(grade = "character"))
  adjusted <- Surv(start, stop, dead) ~ bm + age_years + male + g2 + g3

  ours <- read.csv(path("intervals.csv"))
  add("timedep", cox_values(adjusted, ours))

  complete <- patients[!is.na(patients$grade) & patients$grade != "", ]
  complete$g2 <- as.integer(complete$grade == "G2")
  complete$g3 <- as.integer(complete$grade == "G3")
  switch <- ifelse(complete$bm == 1, complete$bm_months, NA)
  built <- counting_process(complete, "os_months", "dead", switch, "bm",
                            keep = c("age_years", "male", "g2", "g3"))
  write_intervals(built, "r_intervals.csv")
  add("timedep_r", c(cox_values(adjusted, built), patients = length(unique(built$id))))

  for (m in setting("landmarks")) {
    alive <- patients[patients$os_months > m, ]
    alive$time <- alive$os_months - m
    alive$bm_landmark <- as.integer(alive$bm == 1 & !is.na(alive$bm_months) &
                                      alive$bm_months <= m)
    add(sprintf("landmark_%g", m),
        c(n = nrow(alive), cox_values(Surv(time, dead) ~ bm_landmark, alive)))
  }

  # survival's restricted mean: the curve extended flat to the horizon if it ends before
  horizon <- setting("horizon")
  table <- summary(survfit(Surv(os_months, dead) ~ bm, patients), rmean = horizon)$table
  z <- 1.959964  # the contract's quantile for the group CIs
  for (group in 0:1) {
    line <- table[sprintf("bm=%d", group), ]
    rmean <- unname(line["rmean"])
    se <- unname(line["se(rmean)"])
    add(sprintf("rmst.%d", group), c(n = unname(line["records"]), rmean = rmean, se = se,
                                    lower = rmean - z * se, upper = rmean + z * se))
  }
  difference <- unname(table["bm=1", "rmean"] - table["bm=0", "rmean"])
  half_width <- 1.96 * sqrt(sum(table[, "se(rmean)"]^2))
  add("rmst.diff", c(estimate = difference, lower = difference - half_width,
                     upper = difference + half_width))
}

# --- competing risks of a first SRE, and antiresorptive therapy time-dependent ---------
if (file.exists(path("sre.csv"))) {
  sre <- read.csv(path("sre.csv"))
  curves <- list()
  for (arm in 1:0) {
    group <- sre[sre$antiresorptive == arm, ]
    add(sprintf("cif.%d", arm), c(n = nrow(group)))
    if (nrow(group) == 0) next
    fit <- survfit(Surv(time, factor(cause, 0:2)) ~ 1, group)
    state <- function(s) which(fit$states == s)
    curves[[length(curves) + 1]] <- data.frame(
      arm = arm, time = fit$time, n_risk = fit$n.risk[, state("(s0)")],
      cif_1 = fit$pstate[, state("1")], cif_2 = fit$pstate[, state("2")]
    )
    times <- setting("cif_times")
    at <- summary(fit, times = times, extend = FALSE)
    cif <- matrix(at$pstate, ncol = length(fit$states))[, state("1")]
    values <- cif[match(times, at$time)]
    add(sprintf("cif.%d", arm), setNames(values, sprintf("%g", times)))
  }
  write_intervals(do.call(rbind, curves), "r_curves.csv")
}
if (file.exists(path("exposure.csv"))) {
  ours <- read.csv(path("exposure.csv"))
  add("sre_timedep", cox_values(Surv(start, stop, event) ~ exposed, ours))
  switch <- ifelse(sre$antiresorptive == 1, sre$exposure_start, NA)
  sre$sre <- as.integer(sre$cause == 1)
  built <- counting_process(sre, "time", "sre", switch, "exposed")
  names(built)[4] <- "event"
  write_intervals(built, "r_exposure.csv")
  add("sre_timedep_r", c(cox_values(Surv(start, stop, event) ~ exposed, built),
                         patients = length(unique(built$id))))
}

write.csv(data.frame(name = names(results), value = number(results)), path("r.csv"),
          row.names = FALSE)
