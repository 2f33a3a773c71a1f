/* sn_topics.c - MQTT-SN topic ids: registered per client (REGISTER both ways),
 * predefined by the config (the same for every client), and short two-character
 * names carried in the id itself; plus the group's mountpoint.
 *
 * A client's registrations are a small array searched linearly: a device uses a
 * handful of topics, and max_registrations bounds the worst case.
 */
#include <stdlib.h>
#include <string.h>

#include "adapters/mqttsn/sn_internal.h"

int sn_mount(const struct sn_gw *gw, const char *topic, size_t len, char *buf, size_t n) {
    size_t mp = strlen(gw->c.mountpoint);
    if (mp + len + 1 > n)
        return -1;
    memcpy(buf, gw->c.mountpoint, mp);
    memcpy(buf + mp, topic, len);
    buf[mp + len] = 0;
    return (int)(mp + len);
}

const char *sn_unmount(const struct sn_gw *gw, const char *topic, size_t *len) {
    size_t mp = strlen(gw->c.mountpoint);
    if (mp && *len >= mp && !memcmp(topic, gw->c.mountpoint, mp)) {
        *len -= mp;
        return topic + mp;
    }
    return topic;
}

uint16_t sn_predefined_id(const struct sn_gw *gw, const char *topic, size_t len) {
    for (int i = 0; i < gw->c.n_predefined; i++)
        if (strlen(gw->predefined[i].topic) == len && !memcmp(gw->predefined[i].topic, topic, len))
            return gw->predefined[i].id;
    return 0;
}

static const char *predefined_topic(const struct sn_gw *gw, uint16_t id) {
    for (int i = 0; i < gw->c.n_predefined; i++)
        if (gw->predefined[i].id == id)
            return gw->predefined[i].topic;
    return NULL;
}

void sn_reg_remove(struct sn_client *c, uint16_t id) {
    for (uint32_t i = 0; i < c->n_regs; i++)
        if (c->regs[i].id == id) {
            free(c->regs[i].topic);
            c->regs[i] = c->regs[--c->n_regs];
            return;
        }
}

const char *sn_reg_topic(const struct sn_client *c, uint16_t id) {
    for (uint32_t i = 0; i < c->n_regs; i++)
        if (c->regs[i].id == id)
            return c->regs[i].topic;
    return NULL;
}

uint16_t sn_reg_find(const struct sn_client *c, const char *topic, size_t len) {
    for (uint32_t i = 0; i < c->n_regs; i++)
        if (strlen(c->regs[i].topic) == len && !memcmp(c->regs[i].topic, topic, len))
            return c->regs[i].id;
    return 0;
}

uint16_t sn_reg_add(struct sn_client *c, const char *topic, size_t len) {
    uint16_t id = sn_reg_find(c, topic, len);
    if (id)
        return id;
    if (c->n_regs >= (uint32_t)c->gw->c.max_registrations || c->n_regs >= 0xFFFE)
        return 0;
    if (c->n_regs == c->cap_regs) {
        uint32_t cap = c->cap_regs ? c->cap_regs * 2 : 4;
        if (cap > (uint32_t)c->gw->c.max_registrations)
            cap = (uint32_t)c->gw->c.max_registrations;
        struct sn_reg *r = realloc(c->regs, cap * sizeof *r);
        if (!r)
            return 0;
        c->regs = r;
        c->cap_regs = cap;
    }
    char *t = malloc(len + 1);
    if (!t)
        return 0;
    memcpy(t, topic, len);
    t[len] = 0;
    /* Ids are never reused while the client keeps its registrations. */
    do {
        if (++c->next_topic_id == 0xFFFF)
            c->next_topic_id = 1;
    } while (sn_reg_topic(c, c->next_topic_id));
    c->regs[c->n_regs++] = (struct sn_reg){c->next_topic_id, t};
    return c->next_topic_id;
}

void sn_regs_clear(struct sn_client *c) {
    for (uint32_t i = 0; i < c->n_regs; i++)
        free(c->regs[i].topic);
    free(c->regs);
    c->regs = NULL;
    c->n_regs = c->cap_regs = 0;
    c->next_topic_id = 0;
}

int sn_topic_of(struct sn_client *c, uint8_t id_type, uint16_t id, char *buf, size_t n) {
    const char *t = NULL;
    char shrt[3];
    if (id_type == SN_TOPIC_SHORT) {
        shrt[0] = (char)(id >> 8);
        shrt[1] = (char)(id & 0xFF);
        shrt[2] = 0;
        t = shrt;
        if (memchr(shrt, 0, 2)) /* a short name is two characters */
            return -1;
    } else if (id_type == SN_TOPIC_PREDEFINED) {
        t = predefined_topic(c->gw, id);
    } else {
        t = sn_reg_topic(c, id);
    }
    return t ? sn_mount(c->gw, t, strlen(t), buf, n) : -1;
}
