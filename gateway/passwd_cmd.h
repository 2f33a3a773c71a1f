/* passwd_cmd.h - `polygate passwd`, the mosquitto_passwd work-alike that
 * creates and edits password files (format: broker/passwd.h). main() hands it
 * the arguments from "passwd" on.
 */
#ifndef PG_PASSWD_CMD_H
#define PG_PASSWD_CMD_H

/* argv[0] is "passwd". Returns the process exit status: 0, or 1 after printing
 * the problem on stderr. */
int pg_passwd_main(int argc, char **argv);

#endif
