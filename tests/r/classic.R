# Export R survival's classic data sets lung, veteran and mgus2 as CSV, for
# tests/test_against_r.py.
# Usage: Rscript classic.R folder
suppressPackageStartupMessages(library(survival))
folder <- commandArgs(trailingOnly = TRUE)[1]
write.csv(survival::lung, file.path(folder, "lung.csv"), row.names = FALSE)
write.csv(survival::veteran, file.path(folder, "veteran.csv"), row.names = FALSE)
write.csv(survival::mgus2, file.path(folder, "mgus2.csv"), row.names = FALSE)
