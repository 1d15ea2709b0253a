#!/usr/bin/perl

# Writes a synthetic A3 audit trail of about N records (W, A, C, S;
# docs/audit.md) as Redis protocol (RPUSH) on standard
# output, for: perl t/jukictl/gen.pl N KEYFILE | redis-cli --pipe
# Timestamps start two days ago (UTC).

use strict;
use warnings;

use File::Basename qw(dirname);
use lib dirname(__FILE__);
use JukiRef;

my ($n, $keyfile) = @ARGV;
die "usage: gen.pl N KEYFILE\n" unless $n && $keyfile;

open my $f, '<', $keyfile or die "$keyfile: $!";
binmode $f;
my $raw = do { local $/; <$f> };
my $key = JukiRef::key($raw);

srand(7);
my @w = map { JukiRef::writer(sprintf('%016x', 0x1000 + $_), $key) } 0 .. 15;
my @agencies = map { [ "agency-$_", 'municipality',
                       [ 'tax.local', 'pension.benefit' ] ] } 1 .. 12;
my @codes = ('', map { sprintf('%012d', 1000000 + $_ * 7919) } 1 .. 20000);
my $count = 0;
my $out = '';

binmode STDOUT;
print JukiRef::resp('HSET', 'juki:purposes', 'tax.local',
                    'Local Tax Act, art. 5', 'pension.benefit',
                    'Basic Resident Registration Act, Annex 1, item 1');

# about 1.79 records a request: every decision Redis made is completed,
# and some refusals of the unidentified are summarised
JukiRef::trail(requests => int($n / 1.79), writers => \@w,
               agencies => \@agencies, codes => \@codes, summaries => 1,
               start_ms => (int(time() / 86400) - 2) * 86400000,
               emit => sub {
                   $out .= JukiRef::resp(JukiRef::rpush_args($_[0]));
                   if (length($out) > 1 << 20) { print $out; $out = '' }
                   $count++;
               });
print $out;
print STDERR "gen.pl: $count records\n";
