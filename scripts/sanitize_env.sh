# Sourced by sanitize.sh and fuzz.sh: every sanitizer finding stops the program with a stack
# trace and a failing exit status; leaks are findings too.
export ASAN_OPTIONS=halt_on_error=1:print_stacktrace=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=print_suppressions=0
