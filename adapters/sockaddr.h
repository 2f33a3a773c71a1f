/* sockaddr.h - an address literal and a port as a socket address, for whatever
 * binds a socket itself (the MQTT-SN UDP listener, the gateway explaining a failed
 * listen). */
#ifndef PG_SOCKADDR_H
#define PG_SOCKADDR_H

#include <sys/socket.h>

/* Fills ss from an IPv4 or IPv6 literal (config.c checked it) and returns its
 * length; the family is ss->ss_family. */
socklen_t pg_sockaddr(const char *ip, int port, struct sockaddr_storage *ss);

#endif
