/*
 * Payload entry. The host loader already put the vCPU in 64-bit long mode
 * (page tables, GDT, EFER, CR0/CR3/CR4 through KVM_SET_SREGS), pointed RIP
 * here and put the vCPU index in RDI, so no mode switch happens in the guest:
 * take this vCPU's stack (STACK_TOP - index * STACK_STRIDE), run the C code
 * with the index as its argument, halt forever if it returns. An index of
 * VCPUS_MAX or more halts at once.
 */
  .section .text.entry, "ax"
  .globl _start
_start:
  cmp $8, %rdi
  jae 1f
  mov %rdi, %rax
  shl $16, %rax
  mov $__stack_top, %rsp
  sub %rax, %rsp
  call payload_main
1:
  hlt
  jmp 1b
