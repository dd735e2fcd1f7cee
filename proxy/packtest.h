/*
 * portcullis test: decision tests for rule packs.
 *
 *   portcullis test [-c FILE] [--junit FILE] [--coverage] [--require-coverage] TESTS.yaml...
 *
 * Every case of the test files (testfile.h) is judged by the server's own
 * code against the configured database (verdict.h, as explain does) and
 * compared with what it expects. Exit 0 when every case passed (and, with
 * --require-coverage, every rule and every policy was exercised), 1
 * otherwise, 2 on a usage, test file, config or database error.
 */
#ifndef PC_PACKTEST_H
#define PC_PACKTEST_H

int pc_packtest_main(int argc, char **argv);

#endif
