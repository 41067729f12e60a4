/*
 * SGEMM throughput on a transformer's stream of products with weights that do not fit in the last-level
 * cache, as a model runs them: 12 layers (by default) of [M x 768] x [768 x 2304], [2304 x 768],
 * [768 x 3072], [3072 x 768], each with its own packed B, so B comes from memory as in BERT or GPT-2
 * (a one-matrix benchmark keeps B in L3 and shows twice the rate). GemmDriver.swift's loop (K blocks,
 * panel groups, the next-block prefetch, the split over panels on 2 threads) is copied here in C, so
 * blocking and prefetch variants can be timed before a package build. Not part of the product:
 *
 *   /opt/swift/usr/bin/clang -O2 -I Sources/CKernels/include tools/bench_sgemm_stream.c Sources/CKernels/[a-z]*.c \
 *       -lm -lpthread -o /tmp/bench_sgemm_stream
 *   [PF=0|1] [KC=256] [SLAB=256 (KiB)] /tmp/bench_sgemm_stream [M=128] [threads=1] [layers=12] [seconds=3]
 *
 * PF=0 drops the driver's software prefetch of the next B block. Prints the median and best time of
 * the whole stream and GFLOP/s (2*M*N*K per product). Compare with the memory bandwidth of the
 * machine: at M = 128 each float of B feeds 256 flops, so 200 GFLOP/s needs about 3 GB/s of B.
 */
#include "onyx_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static size_t KC = 256, SLAB = 256<<10; static int PF=1;
static onyx_isa isa=ONYX_ISA_AVX512;
typedef struct { size_t m,n,k; const float*pa,*pb; float*c; size_t panels; int parts; } job;
static void driver(size_t m,size_t n,size_t k,const float*pa,const float*pb,float*c,size_t p_lo,size_t p_hi){
  size_t mr=onyx_sgemm_mr(isa), nr=onyx_sgemm_nr(isa);
  size_t strips=(m+mr-1)/mr;
  size_t group = SLAB/(strips*mr*nr*4); if(!group) group=1;
  for(size_t first=p_lo; first<p_hi; first+=group){
    size_t gend = first+group<p_hi?first+group:p_hi;
    for(size_t p0=0;p0<k;p0+=KC){
      size_t depth = k-p0<KC?k-p0:KC; int last=p0+depth>=k;
      for(size_t panel=first;panel<gend;panel++){
        size_t j0=panel*nr, width=n-j0<nr?n-j0:nr;
        const float *next=NULL; size_t nextFloats=0;
        if(panel+1<gend){next=pb+(panel+1)*k*nr+p0*nr; nextFloats=depth*nr;}
        else if(!last){next=pb+first*k*nr+(p0+depth)*nr; size_t d=k-p0-depth; nextFloats=(d<KC?d:KC)*nr;}
        else if(gend<p_hi){next=pb+gend*k*nr; nextFloats=(k<KC?k:KC)*nr;}
        for(size_t s=0;s<strips;s++){
          size_t i0=s*mr, rows=m-i0<mr?m-i0:mr;
          const float*pf=NULL;
          if(PF==1){ size_t line=s*depth*16; pf = next && line+depth*16<=nextFloats ? next+line : NULL; }
          onyx_sgemm_tile(isa,depth,pa+s*k*mr+p0*mr,pb+panel*k*nr+p0*nr,pf,c+i0*n+j0,n,rows,width,p0>0,NULL);
        }
      }
    }
  }
}
static void task(void*ctx,size_t part){job*j=ctx; size_t lo=j->panels*part/j->parts, hi=j->panels*(part+1)/j->parts; driver(j->m,j->n,j->k,j->pa,j->pb,j->c,lo,hi);}
int main(int argc,char**argv){
  size_t M=argc>1?atoi(argv[1]):128; int T=argc>2?atoi(argv[2]):1; int L=argc>3?atoi(argv[3]):12; double secs=argc>4?atof(argv[4]):3;
  if(getenv("PF"))PF=atoi(getenv("PF")); if(getenv("KC"))KC=atoi(getenv("KC")); if(getenv("SLAB"))SLAB=atoi(getenv("SLAB"))<<10;
  size_t dims[4][2]={{768,2304},{2304,768},{768,3072},{3072,768}};
  size_t mr=onyx_sgemm_mr(isa), nr=onyx_sgemm_nr(isa);
  float*pb[64][4]; float*x=malloc(M*3072*4),*y=malloc(M*3072*4),*pa=aligned_alloc(64,(M+mr)*3072*4);
  for(size_t i=0;i<M*3072;i++)x[i]=(float)rand()/(float)RAND_MAX-0.5f;
  double flops=0;
  for(int l=0;l<L;l++)for(int d=0;d<4;d++){size_t k=dims[d][0],n=dims[d][1];float*b=malloc(k*n*4);for(size_t i=0;i<k*n;i++)b[i]=((float)rand()/(float)RAND_MAX-0.5f)*0.05f;
    pb[l][d]=aligned_alloc(64,(n+nr-1)/nr*nr*k*4); onyx_sgemm_pack_a(isa,b,n,1,n,k,1.0f,nr,pb[l][d]); free(b); flops+=2.0*M*n*k;}
  onyx_pool*pool=T>1?onyx_pool_create(T,200000):NULL;
  double ts[10000]; int runs=0; double t0=now();
  while((now()-t0<secs||runs<3)&&runs<10000){
    double t=now();
    for(int l=0;l<L;l++)for(int d=0;d<4;d++){size_t k=dims[d][0],n=dims[d][1];
      onyx_sgemm_pack_a(isa,x,k,0,M,k,1.0f,mr,pa);
      job j={M,n,k,pa,pb[l][d],y,(n+nr-1)/nr,T};
      if(pool) onyx_pool_run(pool,T,task,&j); else task(&j,0);
      /* keep values bounded: next input is y (first k of columns used) */
      float*s=x;x=y;y=s;}
    ts[runs++]=now()-t;
  }
  for(int i=0;i<runs;i++)for(int j=i+1;j<runs;j++)if(ts[j]<ts[i]){double q=ts[i];ts[i]=ts[j];ts[j]=q;}
  printf("M=%zu T=%d L=%d PF=%d KC=%zu: runs %d med %.2f ms best %.2f ms  %.1f GFLOP/s (best %.1f)\n",M,T,L,PF,KC,runs,ts[runs/2]*1e3,ts[0]*1e3,flops/ts[runs/2]*1e-9,flops/ts[0]*1e-9);
}
