/*
 * portcullis: JUnit XML reports (`portcullis test --junit FILE`), the
 * format CI systems read: <testsuites> of <testsuite> of <testcase>, a
 * <failure> in each failed case. Every text is escaped for XML 1.0.
 */
#ifndef PC_JUNIT_H
#define PC_JUNIT_H

#include <stddef.h>

struct junit;

struct junit *junit_new(const char *name);
/* Start a suite (a test file); cases go to the last suite started. */
void junit_suite(struct junit *j, const char *name);
/* One case; failure NULL when it passed, else a one-line message (the
 * attribute) and details (the element's text, may be NULL). */
void junit_case(struct junit *j, const char *name, double seconds, const char *failure, const char *details);
/* Write the report. 0, or -1 with a message in err. */
int junit_write(const struct junit *j, const char *path, char *err, size_t errlen);
void junit_free(struct junit *j);

#endif
