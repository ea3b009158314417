use arch_x86_64::X86_64;
use forkmodel::*;

#[test]
fn smoke_random() {
    let mut fails = 0;
    for seed in 0..300u64 {
        let l = forkmodel::layout::random_layout(seed);
        let cfg = ForkConfig { mapcount: MapcountModel::PerPage, resched_every: if seed % 3 == 0 { Some(3) } else { None } };
        if let Err(e) = forkmodel::oracle::check_layout::<X86_64>(&l, cfg, &StrategyId::ALL) {
            fails += 1;
            if fails < 6 { println!("seed {seed}: {e}"); }
        }
    }
    println!("fails {fails}");
}
