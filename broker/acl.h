/* acl.h - access control lists in mosquitto's acl_file format.
 *
 * Loads a mosquitto ACL file and answers "may this client read / write / subscribe
 * to this topic?" with the semantics of mosquitto 2.0.11 (checked against the
 * running broker; see tests/unit/test_acl.c). The gateway registers an authorize
 * hook (broker.h) that calls pg_acl_check; this module knows nothing about sessions,
 * adapters or the event loop.
 *
 * File format, one directive per line:
 *   # comment                       ('#' must be the first character of the line)
 *   topic [read|write|readwrite|deny] TOPIC
 *   pattern [read|write|readwrite|deny] TOPIC    (%c = client id, %u = username)
 *   user NAME
 * `topic` lines before the first `user` line apply to anonymous clients, later ones
 * to the user named by the last `user` line. `pattern` lines apply to every client.
 *
 * How a check is decided (mosquitto 2.0.11):
 *  1. $ topics: WRITE to a topic starting with "$SYS" is refused unless it matches
 *     $SYS/broker/connection/+/state; READ or WRITE of "$share..." is refused.
 *  2. The client's own section (its user section, or the anonymous section when it
 *     has no username): a matching `deny` refuses; else a matching entry granting
 *     the access allows. A pattern cannot override this section's answer.
 *  3. Patterns, if the file has any: a username or client id containing '+' or '#'
 *     is refused outright; otherwise a matching `deny` pattern refuses, a matching
 *     pattern granting the access allows. %u patterns never match anonymous clients.
 *  4. Anything else is refused.
 * Polygate is stricter than mosquitto in one place: a client id or username that
 * contains '/' is never substituted into an allowing pattern (mosquitto 2.0.11 lets
 * id "a/b" match `pattern read d/%c` on d/a/b, reaching into another client's
 * subtree). Deny patterns still substitute it, so nothing is refused less.
 *
 * SUBSCRIBE: mosquitto 2.0.11 does not check subscriptions against the ACL file at
 * all (every SUBSCRIBE is granted; the READ check before each delivery filters what
 * arrives), and that is the default here. pg_acl_set_strict_subscribe turns on a
 * check at subscribe time instead, modelled on mosquitto 2.1's
 * mosquitto_sub_matches_acl (not checked against a running 2.1): the filter,
 * without any $share/GROUP/ prefix, must lie entirely inside a read/readwrite entry (so
 * `topic read a/#` admits a/+ and a/# but not #), and a deny entry refuses it only
 * when the filter lies entirely inside the deny entry.
 */
#ifndef PG_ACL_H
#define PG_ACL_H

#include <stddef.h>

typedef struct pg_acl pg_acl;

/* Parses the ACL file. On error returns NULL and writes "FILE:LINE: problem" (or
 * "FILE: problem" when the file cannot be read) into err. */
pg_acl *pg_acl_load(const char *path, char *err, size_t errlen);
void pg_acl_free(pg_acl *a);

/* access is one PG_ACCESS_* (broker.h); username NULL or "" means anonymous (as
 * mosquitto treats an empty username). topic is a topic name for READ and WRITE, a
 * topic filter (maybe $share/GROUP/FILTER) for SUBSCRIBE. Returns 1 allowed, 0
 * denied. Allocates only when a pattern expands beyond a stack buffer. */
int pg_acl_check(const pg_acl *a, const char *client_id, const char *username, int access,
                 const char *topic, size_t topic_len);

/* 0 (default): SUBSCRIBE is always allowed, as in mosquitto 2.0.11. 1: checked as
 * described above. */
void pg_acl_set_strict_subscribe(pg_acl *a, int strict);

#endif
