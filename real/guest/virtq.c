/*
 * Driver side of one virtio 1.0 split virtqueue, placed at the fixed addresses of
 * payload.h. Each request is a chain of one device-readable buffer (vq_out_len
 * bytes: u32 request number, u32 length, then bytes (number + i) & 0xff) and, if
 * vq_in_len > 0, one device-writable buffer. virtq_step publishes up to a batch of
 * requests per avail->idx update, kicks the notify address unless the device set
 * VRING_USED_F_NO_NOTIFY, and reclaims used entries. virtq_run (WL_VIRTIO) steps
 * until vq_requests came back (or the host sets `stop`); the dirty workload steps
 * once per tick, without a limit when vq_requests is 0, and answers pings with
 * virtq_reply: a one-buffer request whose length word has VQ_REPLY set and whose
 * bytes 8-15 hold the ping value. One vCPU at a time.
 * Leaves out: indirect descriptors, event-idx, interrupts (the driver polls the
 * used ring), and the transport (feature bits, status register).
 */
#include "io.h"
#include "payload.h"

#define DESC ((volatile struct vring_desc *)VQ_DESC_ADDR)
#define AVAIL ((volatile struct vring_avail *)VQ_AVAIL_ADDR)
#define USED ((volatile struct vring_used *)VQ_USED_ADDR)

typedef volatile struct mailbox mailbox_t;

static struct {
  uint32_t n, requests, out_len, in_len, chain;
  uint16_t free_head;  /* free descriptors chained through .next */
  uint32_t num_free;
  uint32_t posted, completed;
  uint16_t avail_idx, last_used;
} q;

static void kick(mailbox_t *m) {
  if (m->vq_notify_kind == NOTIFY_PIO)
    outw((uint16_t)m->vq_notify_addr, (uint16_t)m->vq_queue_index);
  else
    mmio_write16(m->vq_notify_addr, (uint16_t)m->vq_queue_index);
}

static uint16_t alloc_desc(void) {
  uint16_t d = q.free_head;
  q.free_head = DESC[d].next;
  q.num_free--;
  return d;
}

static void free_chain(uint16_t head) {
  uint16_t d = head;
  for (;;) {
    q.num_free++;
    if (!(DESC[d].flags & VRING_DESC_F_NEXT)) break;
    d = DESC[d].next;
  }
  DESC[d].next = q.free_head;
  q.free_head = head;
}

static void fill_out(uint8_t *buf, uint32_t len, uint32_t request) {
  ((uint32_t *)buf)[0] = request;
  ((uint32_t *)buf)[1] = len;
  for (uint32_t i = 8; i < len; i++) buf[i] = (uint8_t)(request + i);
}

/* Checks the parameters and lays out the queue; -1 (state ST_BAD_PARAMS) if they are wrong. */
int virtq_setup(mailbox_t *m) {
  uint32_t n = m->vq_size;
  q.n = n;
  q.requests = m->vq_requests;
  q.out_len = m->vq_out_len;
  q.in_len = m->vq_in_len;
  q.chain = q.in_len ? 2 : 1;
  if (n == 0 || n > VQ_SIZE_MAX || (n & (n - 1)) != 0 || q.out_len < 8 || q.out_len > VQ_BUF_STRIDE ||
      q.in_len > VQ_BUF_STRIDE || (m->vq_notify_kind != NOTIFY_PIO && m->vq_notify_kind != NOTIFY_MMIO)) {
    m->state = ST_BAD_PARAMS;
    return -1;
  }
  memset((void *)VQ_DESC_ADDR, 0, 16 * n);
  memset((void *)VQ_AVAIL_ADDR, 0, 6 + 2 * n);
  for (uint32_t i = 0; i < n; i++) DESC[i].next = (uint16_t)(i + 1 < n ? i + 1 : 0);
  q.free_head = 0;
  q.num_free = n;
  q.posted = 0;
  q.completed = 0;
  q.avail_idx = 0;
  q.last_used = USED->idx;
  m->vq_desc_addr = VQ_DESC_ADDR;
  m->vq_avail_addr = VQ_AVAIL_ADDR;
  m->vq_used_addr = VQ_USED_ADDR;
  return 0;
}

/* Posts up to max_new requests (kicking once), then reclaims used ones. Non-zero if anything moved. */
int virtq_step(mailbox_t *m, uint32_t max_new) {
  uint32_t n = q.n;
  uint32_t added = 0;
  while ((q.requests == 0 || q.posted < q.requests) && q.num_free >= q.chain && added < max_new) {
    uint16_t head = alloc_desc();
    uint64_t out = VQ_BUF_ADDR + (uint64_t)head * VQ_BUF_STRIDE;
    fill_out((uint8_t *)out, q.out_len, q.posted);
    DESC[head].addr = out;
    DESC[head].len = q.out_len;
    DESC[head].flags = 0;
    if (q.in_len) {
      uint16_t d = alloc_desc();
      DESC[d].addr = VQ_BUF_ADDR + (uint64_t)d * VQ_BUF_STRIDE;
      DESC[d].len = q.in_len;
      DESC[d].flags = VRING_DESC_F_WRITE;
      DESC[head].flags = VRING_DESC_F_NEXT;
      DESC[head].next = d;
    }
    AVAIL->ring[q.avail_idx & (n - 1)] = head;
    q.avail_idx++;
    q.posted++;
    added++;
  }
  if (added) {
    barrier();            /* ring entries before the index */
    AVAIL->idx = q.avail_idx;
    mb();                 /* index before reading the device's flags */
    if (USED->flags & VRING_USED_F_NO_NOTIFY) {
      m->vq_kicks_suppressed++;
    } else {
      m->vq_kicks++;      /* counted first, so a host woken by the kick sees it */
      kick(m);
    }
    m->vq_posted = q.posted;
  }
  int progressed = added != 0;
  while (USED->idx != q.last_used) {
    barrier();            /* index before the element */
    volatile struct vring_used_elem *e = &USED->ring[q.last_used & (n - 1)];
    uint32_t id = e->id;
    m->vq_used_bytes += e->len;
    if (id < n) free_chain((uint16_t)id);
    q.last_used++;
    q.completed++;
    progressed = 1;
  }
  m->vq_completed = q.completed;
  return progressed;
}

/* Posts an echo reply carrying `ping` and kicks; 0 when no descriptor is free (try again later). */
int virtq_reply(mailbox_t *m, uint64_t ping) {
  if (q.num_free < 1) return 0;
  uint16_t head = alloc_desc();
  uint64_t out = VQ_BUF_ADDR + (uint64_t)head * VQ_BUF_STRIDE;
  uint32_t len = q.out_len < 16 ? 16 : q.out_len;
  fill_out((uint8_t *)out, len, q.posted);
  ((uint32_t *)out)[1] = len | VQ_REPLY;
  *(uint64_t *)(out + 8) = ping;
  DESC[head].addr = out;
  DESC[head].len = len;
  DESC[head].flags = 0;
  AVAIL->ring[q.avail_idx & (q.n - 1)] = head;
  q.avail_idx++;
  q.posted++;
  barrier();
  AVAIL->idx = q.avail_idx;
  mb();
  if (USED->flags & VRING_USED_F_NO_NOTIFY) {
    m->vq_kicks_suppressed++;
  } else {
    m->vq_kicks++;
    kick(m);
  }
  m->vq_posted = q.posted;
  return 1;
}

void virtq_run(mailbox_t *m) {
  if (virtq_setup(m) != 0) return;
  uint32_t batch = m->vq_batch ? m->vq_batch : 1;
  while (q.completed < q.requests) {
    if (m->stop) return;
    if (virtq_step(m, batch)) {
      m->heartbeat++;
    } else {
      if (m->ping_req != m->ping_ack) {
        m->ping_ack = m->ping_req;
        outl(PORT_PONG, (uint32_t)m->ping_ack);
      }
      cpu_relax();
    }
  }
}
