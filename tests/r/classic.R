# Export R survival's classic data sets lung and veteran as CSV, for tests/test_against_r.py.
# Usage: Rscript classic.R folder
suppressPackageStartupMessages(library(survival))
folder <- commandArgs(trailingOnly = TRUE)[1]
write.csv(survival::lung, file.path(folder, "lung.csv"), row.names = FALSE)
write.csv(survival::veteran, file.path(folder, "veteran.csv"), row.names = FALSE)
