/*
 * Driver side of one virtio 1.0 split virtqueue, placed at the fixed addresses of
 * payload.h. It posts `vq_requests` requests, each a chain of one device-readable
 * buffer (vq_out_len bytes: u32 request number, u32 length, then bytes
 * (number + i) & 0xff) and, if vq_in_len > 0, one device-writable buffer; it
 * publishes up to vq_batch requests per avail->idx update, kicks the notify
 * address unless the device set VRING_USED_F_NO_NOTIFY, and reclaims used
 * entries until every request came back (or the host sets `stop`).
 * Leaves out: indirect descriptors, event-idx, interrupts (the driver polls the
 * used ring), and the transport (feature bits, status register).
 */
#include "io.h"
#include "payload.h"

#define DESC ((volatile struct vring_desc *)VQ_DESC_ADDR)
#define AVAIL ((volatile struct vring_avail *)VQ_AVAIL_ADDR)
#define USED ((volatile struct vring_used *)VQ_USED_ADDR)

static uint16_t free_head;  /* free descriptors chained through .next */
static uint32_t num_free;

static void kick(volatile struct mailbox *m) {
  if (m->vq_notify_kind == NOTIFY_PIO)
    outw((uint16_t)m->vq_notify_addr, (uint16_t)m->vq_queue_index);
  else
    mmio_write16(m->vq_notify_addr, (uint16_t)m->vq_queue_index);
}

static uint16_t alloc_desc(void) {
  uint16_t d = free_head;
  free_head = DESC[d].next;
  num_free--;
  return d;
}

static void free_chain(uint16_t head) {
  uint16_t d = head;
  for (;;) {
    num_free++;
    if (!(DESC[d].flags & VRING_DESC_F_NEXT)) break;
    d = DESC[d].next;
  }
  DESC[d].next = free_head;
  free_head = head;
}

static void fill_out(uint8_t *buf, uint32_t len, uint32_t request) {
  ((uint32_t *)buf)[0] = request;
  ((uint32_t *)buf)[1] = len;
  for (uint32_t i = 8; i < len; i++) buf[i] = (uint8_t)(request + i);
}

void virtq_run(volatile struct mailbox *m) {
  uint32_t n = m->vq_size, requests = m->vq_requests, out_len = m->vq_out_len, in_len = m->vq_in_len;
  uint32_t batch = m->vq_batch ? m->vq_batch : 1;
  uint32_t chain = in_len ? 2 : 1;
  if (n == 0 || n > VQ_SIZE_MAX || (n & (n - 1)) != 0 || out_len < 8 || out_len > VQ_BUF_STRIDE ||
      in_len > VQ_BUF_STRIDE || (m->vq_notify_kind != NOTIFY_PIO && m->vq_notify_kind != NOTIFY_MMIO)) {
    m->state = ST_BAD_PARAMS;
    return;
  }
  memset((void *)VQ_DESC_ADDR, 0, 16 * n);
  memset((void *)VQ_AVAIL_ADDR, 0, 6 + 2 * n);
  for (uint32_t i = 0; i < n; i++) DESC[i].next = (uint16_t)(i + 1 < n ? i + 1 : 0);
  free_head = 0;
  num_free = n;
  m->vq_desc_addr = VQ_DESC_ADDR;
  m->vq_avail_addr = VQ_AVAIL_ADDR;
  m->vq_used_addr = VQ_USED_ADDR;

  uint32_t posted = 0, completed = 0;
  uint16_t avail_idx = 0, last_used = USED->idx;
  while (completed < requests) {
    if (m->stop) return;
    uint32_t added = 0;
    while (posted < requests && num_free >= chain && added < batch) {
      uint16_t head = alloc_desc();
      uint64_t out = VQ_BUF_ADDR + (uint64_t)head * VQ_BUF_STRIDE;
      fill_out((uint8_t *)out, out_len, posted);
      DESC[head].addr = out;
      DESC[head].len = out_len;
      DESC[head].flags = 0;
      if (in_len) {
        uint16_t d = alloc_desc();
        DESC[d].addr = VQ_BUF_ADDR + (uint64_t)d * VQ_BUF_STRIDE;
        DESC[d].len = in_len;
        DESC[d].flags = VRING_DESC_F_WRITE;
        DESC[head].flags = VRING_DESC_F_NEXT;
        DESC[head].next = d;
      }
      AVAIL->ring[avail_idx & (n - 1)] = head;
      avail_idx++;
      posted++;
      added++;
    }
    if (added) {
      barrier();            /* ring entries before the index */
      AVAIL->idx = avail_idx;
      mb();                 /* index before reading the device's flags */
      if (USED->flags & VRING_USED_F_NO_NOTIFY) {
        m->vq_kicks_suppressed++;
      } else {
        m->vq_kicks++;      /* counted first, so a host woken by the kick sees it */
        kick(m);
      }
      m->vq_posted = posted;
    }
    int progressed = added != 0;
    while (USED->idx != last_used) {
      barrier();            /* index before the element */
      volatile struct vring_used_elem *e = &USED->ring[last_used & (n - 1)];
      uint32_t id = e->id;
      m->vq_used_bytes += e->len;
      if (id < n) free_chain((uint16_t)id);
      last_used++;
      completed++;
      progressed = 1;
    }
    m->vq_completed = completed;
    if (progressed) {
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
