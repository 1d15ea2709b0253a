# Refusals before an agency is known are recorded one record each up to
# juki_refusal_budget per client address and second; past it they are
# counted in one S1 summary record per second and cause, so a flood keeps
# the trail bounded and every refusal is still counted.  Refusals make no
# per-operator keys.  Misuse rules that rotating operator ids do not
# escape (per=agency), operator stops that are case-blind, and the
# configuration mistakes nginx -t refuses for them.

use lib 't/juki';
use Test::Nginx::Socket 'no_plan';
use JukiTest;
use Time::HiRes ();

repeat_each(1);
no_shuffle();
no_long_string();
no_root_location();
log_level('info');

# the flood: 600 refusals, or 60 under valgrind (fifty times slower)
our $FLOOD = $ENV{TEST_NGINX_USE_VALGRIND} ? 60 : 600;
our $NGINX_FLOOD = $ENV{TEST_NGINX_USE_VALGRIND} ? 15 : 40;
our (@MARKS, %NEW);

# init of the blocks whose records are checked below: a snapshot of the
# trail (called by its full name: the genuine library evaluates init in a
# package of its own)
sub mark {
    my $n = shift;
    my %seen = map { ("$_->{_stream} $_->{_id}" => 1) } JukiTest::audit_records();
    push @MARKS, [$n, \%seen];
}

# N requests through the test client, from init (one after the other, as
# fast as they go: the harness's own requests are too slow under the
# genuine library to make a flood); returns and keeps the statuses and
# how many bodies carried an audit id
our %FLOODED;

sub flood {
    my ($tag, $n, $headers) = @_;
    require IO::Socket::INET;
    my %r = (status => {}, with_id => 0, without_id => 0);
    for my $i (1 .. $n) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $ENV{TEST_NGINX_SERVER_PORT} || 1984,
            Proto => 'tcp', Timeout => 30) or die "connect: $!";
        my $h = $headers->($i);
        print $s "GET /v1/residents/ HTTP/1.1\r\nHost: localhost\r\n$h"
                 . "Connection: close\r\n\r\n";
        local $/;
        my $resp = <$s> // '';
        close $s;
        my ($st) = $resp =~ m{^HTTP/1\.[01] (\d{3})};
        $r{status}{$st // 'none'}++;
        if ($resp =~ /\{"error":"unknown_agency","audit_id":"[0-9a-f]{16}-\d+"\}/) {
            $r{with_id}++;
        } elsif ($resp =~ /\{"error":"unknown_agency"\}/) {
            $r{without_id}++;
        }
    }
    $FLOODED{$tag} = \%r;
}

# from the next second's start: requests of one second stay in one second
sub second_start {
    my $t = Time::HiRes::time();
    Time::HiRes::sleep(1.02 - ($t - int $t));
}

add_block_preprocessor(sub {
    my $block = shift;
    juki_defaults($block);
});

redis_flush();
JukiTest::subscribe_alerts();

run_tests();

my @alerts = JukiTest::alerts();
mark(undef);

# the records each marked block added
for my $i (0 .. $#MARKS - 1) {
    my ($n, $before) = @{$MARKS[$i]};
    my $after = $MARKS[$i + 1][1];
    $NEW{$n} = [grep { !$before->{"$_->{_stream} $_->{_id}"}
                       && $after->{"$_->{_stream} $_->{_id}"} }
                audit_records()];
}

# the refusals of CAUSE a block added: its own records, its summaries, and
# the refusals counted: records + suppressed
sub refusals {
    my ($n, $cause) = @_;
    my @r = @{$NEW{$n} // []};
    my @own = grep { !exists $_->{phase}
                     && $_->{decision} eq "deny:$cause" } @r;
    my @sum = grep { ($_->{phase} // '') eq 'summary'
                     && $_->{cause} eq $cause } @r;
    my $suppressed = 0;
    $suppressed += $_->{suppressed} for @sum;
    return (\@own, \@sum, @own + $suppressed);
}

# per second: the summary's "recorded" is the records of that second
sub seconds_agree {
    my ($own, $sum) = @_;
    my %per;
    $per{int($_->{ts} / 1000)}++ for @$own;
    return !grep { ($per{$_->{second}} // 0) != $_->{recorded} } @$sum;
}

my ($bad) = JukiTest::trail_problems(audit_records());
is(scalar @$bad, 0, 'the trail follows every rule of docs/audit.md')
    or diag join("\n", @$bad);

# TEST 1: the flood of one unmapped certificate
{
    my ($own, $sum, $total) = refusals(1, 'unknown_agency');
    my %secs = map { (int($_->{ts} / 1000) => 1) } @$own;
    is($total, $FLOOD, "records and summaries count all $FLOOD refusals");
    ok(@$own <= 10 * keys %secs, scalar(@$own) . ' records of their own: '
       . 'at most the budget (10) per second of the flood');
    SKIP: {
        skip('under valgrind the flood is too slow to outrun the budget', 1)
            if $ENV{TEST_NGINX_USE_VALGRIND};
        ok(@$own < $FLOOD / 3, 'the trail grew by far less than the flood');
    }
    # every second of the flood has records of its own (the budget starts
    # afresh each second): more refusals than 10 per such second means some
    # second outran the budget and must have a summary; a flood slowed down
    # (valgrind on a busy machine) may not outrun it, and the checks below
    # hold any summary there is to its second's budget
    if ($FLOOD > 10 * keys %secs) {
        ok(@$sum >= 1, scalar(@$sum) . ' summary records');
    } else {
        diag("the flood never outran the budget in "
             . scalar(keys %secs) . " s: summaries are not required");
    }
    is(scalar(grep { $_->{recorded} == 10 && $_->{suppressed} > 0 } @$sum),
       scalar @$sum, 'each summary: 10 recorded one by one, the rest counted');
    ok(seconds_agree($own, $sum), 'each summary names its second rightly');
    is(scalar(grep { $_->{_stream} eq 'juki:{_}:audit' && $_->{node} eq
                     'test-node' && JukiTest::check_summary($_) } @$sum),
       scalar @$sum, 'summaries: stream of no agency, mac verifies');
    my $f = $FLOODED{1} // {};
    is($f->{status}{403} // 0, $FLOOD, "the client got $FLOOD times 403");
    is($f->{with_id} // 0, scalar @$own,
       'an audit id in the body of each refusal recorded one by one');
    is($f->{without_id} // 0, $FLOOD - @$own,
       'and none in the body of each one only counted');
    my ($ok) = grep { !exists $_->{phase} && $_->{operator} eq 'op-ok' }
               @{$NEW{1}};
    is($ok->{decision} // '', 'allow', 'an agency is served after the flood');
}

# TEST 2: budget 0: every one only counted
{
    my ($own, $sum, $total) = refusals(2, 'unknown_agency');
    is(scalar @$own, 0, 'budget 0: no record of its own');
    is($total, 5, 'and the summary counts all 5');
    is(scalar(grep { $_->{recorded} == 0 } @$sum), scalar @$sum,
       'recorded 0 in each summary');
}

# TEST 4: NGINX's own refusals are under the same budget
{
    my ($own, $sum, $total) = refusals(3, 'unverified_certificate');
    my %secs = map { (int($_->{ts} / 1000) => 1) } @$own;
    is($total, $NGINX_FLOOD, "nginx's refusals: all $NGINX_FLOOD counted");
    ok(@$own <= 10 * keys %secs, 'at most 10 records a second');
    ok(seconds_agree($own, $sum), 'summaries per second agree');
}

# TEST 5: per client address
SKIP: {
    skip('one second per block is not reached under valgrind', 2)
        if $ENV{TEST_NGINX_USE_VALGRIND};
    my ($own, $sum, $total) = refusals(4, 'unknown_agency');
    is(scalar @$own, 6, 'budget 2 for each of 3 addresses: 6 records');
    is($total, 9, 'and 3 more counted');
}

# TEST 6-13: misuse rules
my @agency = grep { /"rule":"distinct_subjects"/ && /"per":"agency"/
                    && /"dry_run":false/ } @alerts;
is(scalar @agency, 1, 'one alert of the per=agency rule');
unlike($agency[0] // '', qr/"operator"/, 'it names no operator');
like($agency[0] // '', qr/"agency":"pension-service"/, 'but the agency');
like($agency[0] // '', qr/"count":4/, 'counting 4 residents');
like($agency[0] // '', qr/"action":"stop_agency"/, 'action stop_agency');
my @dry = grep { /"per":"agency"/ && /"dry_run":true/ } @alerts;
is(scalar @dry, 1, 'and one of its dry run');
like($dry[0] // '', qr/"count":2/, 'counting the resident seen before');
my @op = grep { /"per":"operator"/ } @alerts;
is(scalar @op, 1, 'one alert of the per-operator rule');
like($op[0] // '', qr/"operator":"(?i:op-case)"/, 'naming the operator');
my @insider = grep { !exists $_->{phase} && lc($_->{operator}) eq 'insider' }
              audit_records();
is(join(',', sort map { "$_->{operator}=$_->{decision}" } @insider),
   'INSIDER=deny:stopped,Insider=deny:stopped',
   'the records keep the operator id as sent');

# TEST 14: refusals leave no key behind but the streams
my @keys = sort grep { length } JukiTest::redis_raw('--scan');
is(join(' ', grep { !/^juki:\{[^}]+\}:audit$/ && $_ ne 'juki:purposes' }
             @keys), '', 'refusals with 60 operator ids made no other key');

__DATA__

=== TEST 1: a flood of refusals from an unmapped certificate, then an agency
--- init
JukiTest::redis_reset();
main::mark(1);
main::flood(1, $main::FLOOD, sub { "X-Test-Cert: unmapped\r\n"
    . "Juki-Purpose: pension.benefit\r\nJuki-Operator: op-$_[0]\r\n" });
--- request eval
["GET /v1/residents/", "GET /slow"]
--- more_headers eval
["Juki-Purpose: pension.benefit\nJuki-Operator: op-ok", ""]
--- error_code eval
[200, 200]
--- response_body_like eval
['"operator":"op-ok"', '\.\.\.']
--- timeout: 10
--- no_error_log
[error]



=== TEST 2: juki_refusal_budget 0: refused without an audit id, counted
--- http_config eval
JukiTest::http_config(http => 'juki_refusal_budget 0;')
--- init
main::mark(2);
--- request eval
["GET /v1/residents/", "GET /v1/residents/", "GET /v1/residents/",
 "GET /v1/residents/", "GET /v1/residents/", "GET /slow"]
--- more_headers
X-Test-Cert: unmapped
--- error_code eval
[403, 403, 403, 403, 403, 200]
--- response_body_like eval
['^\{"error":"unknown_agency"\}$', '^\{"error":"unknown_agency"\}$',
 '^\{"error":"unknown_agency"\}$', '^\{"error":"unknown_agency"\}$',
 '^\{"error":"unknown_agency"\}$', '\.\.\.']



=== TEST 3: a summary says in the error log what it counted
--- http_config eval
JukiTest::http_config(http => 'juki_refusal_budget 0;')
--- init
main::mark('2b');
--- request
GET /v1/residents/
--- more_headers
X-Test-Cert: unmapped
--- error_code: 403
--- response_body_like chomp
^\{"error":"unknown_agency"\}$
--- wait: 1.5
--- error_log eval
qr/juki: denied, unknown_agency, 1 refusals in second \d+: 0 recorded one by one, 1 counted in summary record "[0-9a-f]{16}-\d+"/



=== TEST 4: a flood of revoked certificates NGINX refuses itself
--- init
main::mark(3);
--- request eval
[(map { "GET /v1/residents/" } 1 .. $main::NGINX_FLOOD), "GET /slow"]
--- more_headers
X-Test-Cert: revoked
--- error_code eval
[(map { 400 } 1 .. $main::NGINX_FLOOD), 200]
--- timeout: 60



=== TEST 5: the budget is per client address (X-Real-IP through realip)
--- skip_eval: 1: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config eval
JukiTest::http_config(http => "juki_refusal_budget 2;\n"
    . "    set_real_ip_from 127.0.0.1;\n    real_ip_header X-Real-IP;")
--- init
main::second_start();
main::mark(4);
--- request eval
[(map { "GET /v1/residents/" } 1 .. 9), "GET /slow"]
--- more_headers eval
[(map { "X-Test-Cert: unmapped\nX-Real-IP: 10.0.0." . (1 + int(($_ - 1) / 3)) } 1 .. 9), ""]
--- error_code eval
[403, 403, 403, 403, 403, 403, 403, 403, 403, 200]
--- response_body_like eval
[(map { $_ % 3 == 0 ? '^\{"error":"unknown_agency"\}$'
                    : '^\{"error":"unknown_agency","audit_id":"[0-9a-f]{16}-\d+"\}$' } 1 .. 9),
 '\.\.\.']



=== TEST 6: per=agency: three residents by three operator ids, under the threshold
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=3 window=1h per=agency;')
--- init
JukiTest::redis_reset();
main::mark(5);
--- request eval
["GET /v1/residents/?code=20000000001", "GET /v1/residents/?code=20000000002",
 "GET /v1/residents/?code=20000000003"]
--- more_headers eval
[map { "Juki-Purpose: pension.benefit\nJuki-Operator: rot-$_" } 1 .. 3]
--- error_code eval
[200, 200, 200]
--- no_error_log
anomaly rule



=== TEST 7: a fourth operator id with a fourth resident: the agency rule fires
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=3 window=1h per=agency;')
--- request
GET /v1/residents/?code=20000000004
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: rot-4
--- error_code: 200
--- error_log
anomaly rule 1 fired: distinct residents of the agency 4 > 3 in 3600 s, action stop_agency



=== TEST 8: and a fifth operator id is stopped with the agency
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=3 window=1h per=agency;')
--- request
GET /v1/residents/?code=20000000005
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: rot-5
--- error_code: 503
--- response_body_like chomp
^\{"error":"stopped","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 9: the per=agency rule fires on the request that crosses it, and says so
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=1 window=1h per=agency dry_run;')
--- init
JukiTest::redis_reset();
JukiTest::redis('ZADD', 'juki:{pension-service}:seen', int(time * 1000),
                substr(JukiTest::pseudonym('20000000031'), 0, 16));
--- request
GET /v1/residents/?code=20000000032
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: rot-9
--- error_code: 200
--- error_log
anomaly rule 1 fired: distinct residents of the agency 2 > 1 in 3600 s, action stop_agency (dry run: nothing stopped)



=== TEST 10: an operator's residents are counted case-blind: three under the threshold
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=3 window=1h;')
--- init
JukiTest::redis_reset();
--- request eval
["GET /v1/residents/?code=20000000011", "GET /v1/residents/?code=20000000012",
 "GET /v1/residents/?code=20000000013"]
--- more_headers eval
["Juki-Purpose: pension.benefit\nJuki-Operator: Op-Case",
 "Juki-Purpose: pension.benefit\nJuki-Operator: Op-Case",
 "Juki-Purpose: pension.benefit\nJuki-Operator: op-case"]
--- error_code eval
[200, 200, 200]
--- no_error_log
anomaly rule



=== TEST 11: the fourth under another spelling fires the rule
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=3 window=1h;')
--- request
GET /v1/residents/?code=20000000014
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-case
--- error_code: 200
--- error_log
anomaly rule 1 fired: distinct residents 4 > 3 in 3600 s, action stop_operator



=== TEST 12: and the operator is stopped in any case
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=3 window=1h;')
--- request
GET /v1/residents/?code=20000000015
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: OP-CASE
--- error_code: 503
--- response_body_like chomp
^\{"error":"stopped","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 13: the operator stop key in lower case (as jukictl stop --operator writes it) stops Insider
--- init
JukiTest::redis_reset();
JukiTest::redis('SET', 'juki:{pension-service}:stop:op:insider', 'review');
--- request eval
["GET /v1/residents/", "GET /v1/residents/", "GET /v1/residents/",
 "GET /v1/residents/"]
--- more_headers eval
[map { "Juki-Purpose: pension.benefit\nJuki-Operator: $_" }
     qw(Insider INSIDER insider. insider2)]
--- error_code eval
[503, 503, 200, 200]
--- response_body_like eval
['^\{"error":"stopped"', '^\{"error":"stopped"', '"operator":"insider\."',
 '"operator":"insider2"']



=== TEST 14: refusals with 60 operator ids make no per-operator key
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=3 window=1h;')
--- init
JukiTest::redis_reset();
--- request eval
[(map { "GET /v1/admin/?code=20000000021" } 1 .. 30),
 (map { "GET /v1/residents/?code=20000000022" } 1 .. 30)]
--- more_headers eval
[(map { "Juki-Purpose: pension.benefit\nJuki-Operator: ref-$_" } 1 .. 30),
 (map { "X-Test-Cert: unmapped\nJuki-Purpose: pension.benefit\nJuki-Operator: unk-$_" } 1 .. 30)]
--- error_code eval
[map { 403 } 1 .. 60]
--- timeout: 60



=== TEST 15: per=agency with action=stop_operator makes no sense
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=3 window=1h per=agency action=stop_operator;')
--- must_die
--- error_log eval
qr/\[emerg\] .*"action=stop_operator" does not fit a "per=agency" rule: it counts the residents of every operator of the agency together in \S+nginx\.conf:\d+/



=== TEST 16: per=operator does not fit a denials rule
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly denials=3 window=1m per=operator;')
--- must_die
--- error_log eval
qr/\[emerg\] .*"per=operator" does not fit a "denials" rule: denials are counted per agency in \S+nginx\.conf:\d+/



=== TEST 17: an unknown per= value
--- http_config eval
JukiTest::http_config(http => 'juki_anomaly distinct_subjects=3 window=1h per=resident;')
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid or repeated parameter "per=resident" in "juki_anomaly" in \S+nginx\.conf:\d+/



=== TEST 18: a purpose named "_" would share the agency-wide limiter field
--- http_config eval
JukiTest::http_config(http => 'juki_purpose _ { statute "x"; methods GET; uri /v1/; rate 1r/s; }')
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid purpose code "_": use 1-64 of A-Za-z0-9._- starting with a letter or digit in \S+nginx\.conf:\d+/



=== TEST 19: nor may a purpose code start with "." or "-"
--- http_config eval
JukiTest::http_config(http => 'juki_purpose -probe { statute "x"; methods GET; uri /v1/; }')
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid purpose code "-probe": use 1-64 of A-Za-z0-9._- starting with a letter or digit in \S+nginx\.conf:\d+/



=== TEST 20: juki_refusal_budget out of range
--- http_config eval
JukiTest::http_config(http => 'juki_refusal_budget 1000001;')
--- must_die
--- error_log eval
qr/\[emerg\] .*value must be between 0 and 1000000 in \S+nginx\.conf:\d+/



=== TEST 21: juki_refusal_budget not a number
--- http_config eval
JukiTest::http_config(http => 'juki_refusal_budget ten;')
--- must_die
--- error_log eval
qr/\[emerg\] .*"juki_refusal_budget" directive invalid number in \S+nginx\.conf:\d+/
