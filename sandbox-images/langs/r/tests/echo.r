con <- file("stdin")
lines <- readLines(con)
close(con)
cat(paste0(lines, "\n"), sep = "")
